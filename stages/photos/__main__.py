from shared.stage import main
from stages.photos.steps import run

raise SystemExit(main("photos", run))
