"""Dataset stage: builds train/test/calibration splits of face images with
low-light (``_1``, ``_2``) and noisy (``_0_noisy``, ``_1_noisy``) variants.

Modules: ``synth`` (procedural scenes), ``degrade`` (exposure + sensor noise),
``importers`` (WIDER FACE / logynthetic folders), ``labels`` (label formats),
``splits``, ``preview``, and ``steps`` (the ``run(ctx)`` entry point).
"""
