"""The built-in primitive ops; importing this package registers them."""
from netspec.compiler.ops import activations, channels, layers, merge, norms, resample, scaling, sequence  # noqa: F401
