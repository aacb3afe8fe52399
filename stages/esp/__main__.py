from shared.stage import main
from stages.esp.steps import run

raise SystemExit(main("esp", run))
