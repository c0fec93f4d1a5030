"""Back ends: the graph IR to a torch.fx GraphModule, to standalone source, to ONNX."""
