"""The case library: one module per reproduced defect from the study's gold data."""
