"""quantize stage: AIMET PTQ grid, single-shot QAT, INQ, NNCF PTQ, joint QAT (JMMC), INT8 ONNX."""
