from shared.stage import main
from stages.prune.steps import run

raise SystemExit(main("prune", run))
