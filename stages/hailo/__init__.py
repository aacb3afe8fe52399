"""hailo stage: ONNX -> Hailo Dataflow Compiler (HAR, quantized HAR, HEF, multi-network HEF), emulator and HailoRT figures."""
