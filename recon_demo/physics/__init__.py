"""How a measurement is made: the blur operator K and its noise, the CT geometry and its projector."""
