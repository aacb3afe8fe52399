"""Photos stage: the chain on real photographs, outside the training domain.

The models are trained on synthetic faces; this stage runs the FP32 pipeline and the compressed
pipelines of the prune and quantize stages on the real photographs that ship inside the installed
scikit-image wheel (no download), clean and through the dataset stage's own degradation, and scores
their detections against a pretrained reference labeller, facenet-pytorch's MTCNN (its weights ship
inside its wheel).  Modules: ``photos`` (bundled photos, letterbox, reference labels), ``artifacts``
(which ONNX files to run, from the upstream manifests), ``score`` (matching at IoU 0.5), ``figure``
and ``steps`` (the ``run(ctx)`` entry point).
"""
