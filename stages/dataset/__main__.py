"""``python -m stages.dataset --config FILE``: run the dataset stage."""
from shared.stage import main
from stages.dataset.steps import run

raise SystemExit(main("dataset", run))
