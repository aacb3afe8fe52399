from shared.stage import main
from stages.quantize.steps import run

raise SystemExit(main("quantize", run))
