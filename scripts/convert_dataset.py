"""Write a dataset in each layout the data options read, e.g. the animals set into /tmp:

    python scripts/convert_dataset.py --out /tmp/animals_layouts                 # all five layouts
    python scripts/convert_dataset.py --out /tmp/animals_coco --layout coco data=animals

Takes train.py's data overrides for the source (default ``data=animals``, the VOC set at
../shared/datasets/animals, which is only read). Writes ``<out>/<layout>/`` for each layout and
prints the command that trains on it and the one that checks it. See animalseg/data/convert.py
for what each layout keeps (COCO as exact RLE, LabelMe as polygons).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import compose_from_argv, exit_on_user_error

DATA_OPTION = {"folder": "folder", "voc": "voc", "cvat": "cvat", "coco": "coco", "labelme": "labelme"}


@exit_on_user_error
def main(argv: list[str]) -> int:
    from animalseg.data.convert import LAYOUTS, write_layout
    from animalseg.data.module import DataModule
    from animalseg.errors import ConfigError

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="a new (or empty) folder to write into")
    parser.add_argument("--layout", choices=[*LAYOUTS, "all"], default="all")
    parser.add_argument("--coco-polygons", action="store_true", help="COCO polygons instead of exact RLE")
    args, overrides = parser.parse_known_args(argv)
    if not any(o.startswith("data=") for o in overrides):
        overrides = ["data=animals", *overrides]
    cfg = compose_from_argv([*overrides, "data.dataset.cache=auto"])  # decoded once for every layout
    source = DataModule.from_config(cfg.data).source
    layouts = LAYOUTS if args.layout == "all" else (args.layout,)
    out = Path(args.out).expanduser()
    for layout in layouts:
        target = out / layout if args.layout == "all" else out
        try:
            write_layout(source, layout, target, polygons=args.coco_polygons)
        except FileExistsError as error:
            raise ConfigError(f"--out: {error}") from None
        print(f"{layout:<8} {target}")
        print(f"         python train.py data={DATA_OPTION[layout]} data.root={target}")
        print(f"         python scripts/check_dataset.py data={DATA_OPTION[layout]} data.root={target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
