"""The built-in primitive ops; importing this package registers them."""
from netspec.compiler.ops import activations, layers, merge  # noqa: F401
