"""golive probes: one module per family; pure measurement, no pytest imports."""
