"""The labs the app's tabs show: deblurring and CT, inspection, pictures, tables, lessons, robustness, the loss study."""
