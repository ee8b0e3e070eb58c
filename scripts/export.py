"""Export a trained model for inference without animalseg: ``python scripts/export.py run_id=<id> format=tflite``.

Takes ``key=value`` overrides of ``conf/export.yaml``: one of ``run_id=``, ``checkpoint=`` (a
``.keras`` file) or ``model_uri=`` (``models:/NAME@ALIAS``, ``runs:/<id>/model``); ``format=``
``saved_model``, ``tflite`` or ``onnx``; ``quantize=float16|int8`` (TFLite); ``output=PATH``. The
exported graph takes RGB uint8 images (N, H, W, 3) of any size and gives ``masks`` (N, H, W) and
``probabilities`` (N, H, W, C); ``evaluate.py checkpoint=<export>`` scores it. A run trained with
``data.antialias=true`` exports as ``saved_model`` only (the converters have no antialiased resize).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from animalseg.scripting import compose_from_argv, exit_on_user_error


@exit_on_user_error
def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    from animalseg.export import export

    export(compose_from_argv(argv, "export"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
