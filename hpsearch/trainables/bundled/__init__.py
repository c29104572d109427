"""Data shipped with hpsearch: the UCI handwritten digits (CC BY 4.0), as uint8 arrays X [1797, 64], y [1797]."""
