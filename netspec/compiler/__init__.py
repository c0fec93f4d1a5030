"""The compiler: YAML with positions -> pydantic schema -> graph IR -> passes -> codegen.

Nothing in this package imports torch at module level except `codegen`, so shape checking
stays fast.
"""
