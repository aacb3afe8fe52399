from shared.stage import main
from stages.esp_build.steps import run

raise SystemExit(main("esp-build", run))
