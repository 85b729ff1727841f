"""Sources that write canonical landing files: the synthetic shop and real-format adapters."""
