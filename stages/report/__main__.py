from shared.stage import main
from stages.report.steps import run

raise SystemExit(main("report", run))
