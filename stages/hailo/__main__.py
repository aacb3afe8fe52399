from shared.stage import main
from stages.hailo.steps import run

raise SystemExit(main("hailo", run))
