from shared.stage import main
from stages.train.steps import run

raise SystemExit(main("train", run))
