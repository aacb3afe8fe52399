"""Stage logging is not silenced by libraries that reconfigure the root logger's handlers."""


def test_stage_logs_survive_mmcv_silencing_root_handlers(capsys):
    """mmcv's get_logger sets every root StreamHandler to ERROR; the stage's lines must still print."""
    import logging

    from shared.stage import setup_logging
    log = setup_logging("t")
    for h in logging.getLogger().handlers:
        h.setLevel(logging.ERROR)
    log.info("still here")
    assert "[t] INFO still here" in capsys.readouterr().err
    setup_logging("t")                                   # a second call adds no second handler
    log.info("once")
    assert capsys.readouterr().err.count("once") == 1
