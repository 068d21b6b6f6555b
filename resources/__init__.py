"""Files pruneviz ships: demo weights and data, lessons (see pruneviz.core.shipped)."""
