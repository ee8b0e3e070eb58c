"""Inference models that run without animalseg or Python's TensorFlow: SavedModel, TFLite, ONNX.

Each takes ``images``: RGB uint8 (N, H, W, 3) of any H and W, and gives ``masks`` (N, H, W)
uint8 and ``probabilities`` (N, H, W, C) float32 at the input size: the model's ``Predictor``
traced as a graph (the resize to its size, antialiased when it is, the padding to the stride, its
test-time augmentation's views, the crop back and the argmax). A sliding window and mask
post-processing have no graph here and are refused in one line.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig

from animalseg.errors import ConfigError
from animalseg.inference import InferenceSettings, prediction_geometry
from animalseg.inference.predictor import scaled_size
from animalseg.models import SegmentationModel
from animalseg.paths import require_writable
from animalseg.tracking.model import load_logged_model
from animalseg.trained import command_settings, load_trained, saved_settings
from animalseg.training.state import read_state

log = logging.getLogger(__name__)

# format → the quantizations it offers (None = float32) and its file suffix ("" = a folder)
FORMATS: dict[str, tuple[tuple[str | None, ...], str]] = {
    "saved_model": ((None,), ""),
    "tflite": ((None, "float16", "int8"), ".tflite"),
    "onnx": ((None,), ".onnx"),
}
METADATA_FILE = "animalseg.json"
SIGNATURE = "serving_default"
ONNX_OPSET = 17


def inference_function(model: SegmentationModel, settings: InferenceSettings) -> tf.types.experimental.PolyFunction:
    """The ``Predictor``'s whole-image path as one graph over any batch of any-sized uint8 images:
    each view of ``settings.tta`` resized (antialiased when asked), padded, predicted, cropped and
    resized back, and the views' probabilities averaged."""
    stride, head = model.output_stride, model.semantic_head

    def view(images: tf.Tensor, size, flipped: bool, height, width) -> tf.Tensor:
        """One view's probabilities at the input size (a mirrored view is mirrored back)."""
        images = tf.reverse(images, axis=[2]) if flipped else images
        new_h, new_w, pad_h, pad_w = prediction_geometry(height, width, size, stride)
        # keras.ops.image.resize wants sizes known when tracing; this graph learns them when it runs
        inputs = tf.image.resize(images, tf.stack([new_h, new_w]), method="bilinear", antialias=settings.antialias)
        inputs = tf.pad(inputs, [[0, 0], [0, pad_h - new_h], [0, pad_w - new_w], [0, 0]])
        # A pad by run-time amounts loses the channel count in the converters' shape inference (and
        # TFLite's Conv2D needs it); broadcasting against a (1, 1, 1, 3) zero restores it, values unchanged.
        inputs = inputs + tf.zeros([1, 1, 1, 3])
        logits = tf.cast(model(inputs, training=False)[head], tf.float32)[:, :new_h, :new_w]
        probabilities = tf.nn.softmax(tf.image.resize(logits, tf.stack([height, width]), method="bilinear"))
        return tf.reverse(probabilities, axis=[2]) if flipped else probabilities

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        images = tf.cast(images, tf.float32)
        views = []
        for scale in settings.tta.scales:
            if settings.size is not None:
                size = scaled_size(settings.size, scale)
            elif scale == 1.0:
                size = None
            else:
                # in float32, rounded half to even: the Predictor's scaled_size, which every format runs
                longest = tf.cast(tf.maximum(height, width), tf.float32)
                size = tf.maximum(1, tf.cast(tf.round(longest * scale), tf.int32))
            for flipped in (False, True) if settings.tta.flip else (False,):
                views.append(view(images, size, flipped, height, width))
        probabilities = views[0] if len(views) == 1 else tf.add_n(views) / len(views)
        return {"masks": tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8), "probabilities": probabilities}

    return serve


def nested_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """``layer`` and every layer inside it, through nested models."""
    return [layer, *(inner for child in getattr(layer, "layers", []) for inner in nested_layers(child))]


@contextlib.contextmanager
def converter_friendly_upsampling(model: keras.Model) -> Iterator[None]:
    """While tracing an export, nearest ``UpSampling2D`` layers resize with ``tf.image.resize``.

    Keras upsamples by ``ops.repeat`` (for XLA), a reshape to a run-time shape whose channel count
    the TFLite converter cannot infer, and its Conv2D then refuses the unknown channels. A nearest
    resize by an integer factor gives the very same pixels (source row ``(i + 0.5) // f``) and
    keeps the channels; the checkpoint's layers are untouched (the override is per instance, undone after)."""
    upsamplers = [
        layer
        for layer in nested_layers(model)
        if isinstance(layer, keras.layers.UpSampling2D)
        and layer.interpolation == "nearest"
        and layer.data_format == "channels_last"
    ]

    def resize(layer: keras.layers.UpSampling2D, inputs: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(inputs)
        size = tf.stack([shape[1] * layer.size[0], shape[2] * layer.size[1]])
        return tf.image.resize(inputs, size, method="nearest")

    for layer in upsamplers:
        object.__setattr__(layer, "call", functools.partial(resize, layer))
    try:
        yield
    finally:
        for layer in upsamplers:
            object.__delattr__(layer, "call")


def metadata_path(path: Path) -> Path:
    """Where an export keeps its classes and prediction size: inside a folder (a SavedModel),
    beside a file (``model.tflite.json``)."""
    return path / METADATA_FILE if path.is_dir() else path.with_name(path.name + ".json")


def export_path(fmt: str, output: Path) -> Path:
    """The path an export of ``fmt`` asked for at ``output`` is written to.

    Readers tell a TFLite or ONNX file by its suffix, so one given without it gets it
    (``animals`` → ``animals.tflite``, ``animals.v2`` → ``animals.v2.tflite``); a path ending in
    another model format's suffix is refused, as a SavedModel (a folder) with a file suffix is,
    rather than written where it would be read as that other format."""
    suffix = FORMATS[fmt][1]
    if suffix and output.suffix == suffix:
        return output
    named = {file_suffix: name for name, (_, file_suffix) in FORMATS.items() if file_suffix}
    if output.suffix in {*named, ".keras"}:
        kind = f"a {suffix} file" if suffix else "a folder"
        other = f" (or format={named[output.suffix]})" if output.suffix in named else ""
        raise ConfigError(
            f"output={output}: format={fmt} writes {kind}, not a {output.suffix} file; "
            f"give output={output.with_suffix(suffix)}{other}"
        )
    return output.with_name(output.name + suffix)


def read_metadata(path: Path) -> dict:
    file = metadata_path(path)
    return json.loads(file.read_text()) if file.is_file() else {}


TRAINED_ANTIALIASED = "the model predicts with inference.antialias=true (its run's data.antialias)"


def check_format(fmt: str, quantize: str | None, antialias: bool = False, why: str = TRAINED_ANTIALIASED) -> None:
    """Refuse, in one line, a format or quantization this exporter cannot write; ``why`` says
    where an antialiased downscale was asked for."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt}: choose one of {', '.join(FORMATS)}")
    if quantize not in FORMATS[fmt][0]:
        offered = ", ".join(q for q in FORMATS[fmt][0] if q) or "none"
        raise ConfigError(f"quantize={quantize}: format={fmt} offers {offered} (leave quantize unset for float32)")
    if antialias and fmt != "saved_model":
        raise ConfigError(
            f"format={fmt}: {why}, and {fmt} has no "
            "antialiased resize (TensorFlow's ScaleAndTranslate op); export format=saved_model, which keeps it "
            "(or antialias=false: a graph that sees its input differently from the model's validation)"
        )


def check_settings(settings: InferenceSettings) -> None:
    """Refuse, in one line, what an exported graph cannot carry."""
    if settings.mode != "whole":
        raise ConfigError(
            "inference.mode=slide: an export traces whole-image prediction only; export with inference.mode=whole "
            "(or predict by windows with predict.py or the MLflow Model)"
        )
    if settings.postprocesses:
        raise ConfigError(
            "inference.fill_holes/min_area: mask post-processing has no graph in an export; export with "
            "inference.fill_holes=false inference.min_area=0 and post-process the masks it returns"
        )


def export_model(
    model: SegmentationModel,
    settings: InferenceSettings,
    fmt: str,
    output: Path,
    quantize: str | None = None,
    metadata: dict | None = None,
) -> Path:
    """Write ``model`` predicting as ``settings`` say as ``fmt`` at ``export_path(fmt, output)``
    and its metadata beside it; returns that path. A failed export removes what it wrote, so a
    path holds a whole export or nothing."""
    check_format(fmt, quantize, settings.antialias)
    check_settings(settings)
    output = export_path(fmt, output)
    info_file = output / METADATA_FILE if fmt == "saved_model" else metadata_path(output)
    for path in (output, info_file):
        if path.exists():
            where = "" if path == output else f" {path}"
            raise ConfigError(f"output={output}:{where} already exists; remove it or give another output=")
    require_writable(output.parent, "output")
    try:
        write_model(model, settings, fmt, output, quantize)
        info = {
            "class_names": list(model.class_names or []),
            "class_colors": np.asarray(model.class_colors).tolist() if model.class_colors is not None else None,
            "num_classes": model.num_classes,
            "predict_size": settings.size,
            "inference": settings.to_config(),
            "output_stride": model.output_stride,
            "format": fmt,
            "quantize": quantize,
            **(metadata or {}),
        }
        info_file.write_text(json.dumps(info, indent=1))
    except BaseException:
        if output.is_dir():
            shutil.rmtree(output, ignore_errors=True)
        else:
            output.unlink(missing_ok=True)
        info_file.unlink(missing_ok=True)
        raise
    return output


def write_model(
    model: SegmentationModel, settings: InferenceSettings, fmt: str, output: Path, quantize: str | None
) -> None:
    """The inference graph alone, as ``fmt`` at ``output``."""
    serve = inference_function(model, settings)
    with converter_friendly_upsampling(model):
        if fmt == "onnx":
            export_onnx(serve, output)
        else:
            saved = output if fmt == "saved_model" else output.with_name(output.name + ".saved_model")
            archive = keras.export.ExportArchive()  # Keras's SavedModel writer, with our endpoint as the signature
            archive.track(model)
            archive.add_endpoint(SIGNATURE, serve)
            archive.write_out(str(saved), verbose=False)
            if fmt == "tflite":
                try:
                    output.write_bytes(tflite_bytes(saved, quantize))
                finally:
                    shutil.rmtree(saved, ignore_errors=True)


def tflite_bytes(saved_model: Path, quantize: str | None) -> bytes:
    """A SavedModel converted to TFLite: float32, float16 weights, or int8 dynamic-range weights."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE])
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: int8 weights, float activations
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def export_onnx(serve: tf.types.experimental.PolyFunction, output: Path) -> None:
    """The graph through tf2onnx (Keras's own ``export(format="onnx")`` writes the bare network only).

    Not ``tf2onnx.convert.from_function``: it makes every tensor the graph captures (Keras's
    ``Normalization`` keeps its mean and variance as constants) an ONNX input a caller would have to
    feed; frozen with only ``images`` as input, they become constants of the graph."""
    try:
        import tf2onnx
    except ImportError:
        raise ConfigError("format=onnx: needs tf2onnx (pip install 'animalseg[export]')") from None
    concrete = serve.get_concrete_function()
    inputs = [concrete.inputs[0].name]  # images; the others are the captures
    outputs = [tensor.name for tensor in concrete.outputs]
    renames = tf2onnx.convert.tensor_names_from_structed(concrete, inputs, outputs)  # → images, masks, probabilities
    with tf.device("/cpu:0"):
        graph_def = tf2onnx.tf_loader.from_function(concrete, inputs, outputs)
    tf2onnx.convert.from_graph_def(
        graph_def,
        input_names=inputs,
        output_names=outputs,
        opset=ONNX_OPSET,
        tensors_to_rename=renames,
        output_path=str(output),
    )


def export(cfg: DictConfig) -> Path:
    """``scripts/export.py``: export the model ``cfg`` names, and log it into its training run."""
    check_format(cfg.format, cfg.quantize, cfg.get("antialias") is True, "antialias=true was given")
    sources = [k for k in ("checkpoint", "run_id", "model_uri") if cfg.get(k) is not None]
    if len(sources) != 1:
        raise ConfigError("give exactly one of checkpoint=<.keras file>, run_id=<MLflow run id> or model_uri=<URI>")
    if cfg.output:  # a path no export of the format can take is refused before the model loads
        export_path(cfg.format, Path(cfg.output).expanduser())
    with tempfile.TemporaryDirectory(prefix="export_", ignore_cleanup_errors=True) as work:
        return export_to(cfg, Path(work))


def export_to(cfg: DictConfig, work: Path) -> Path:
    """``export`` with ``work`` as the scratch folder for downloads."""
    if cfg.model_uri is not None:
        loaded, _ = load_logged_model(cfg.model_uri, cfg.logger.tracking_uri, work)
        python_model, run_id = loaded.unwrap_python_model(), loaded.metadata.run_id
        model, saved = python_model.model, python_model.predictor.settings
        name = run_id or "model"
    else:
        trained = load_trained(cfg.checkpoint, cfg.run_id, cfg.logger.tracking_uri, work)
        model, run_id = trained.model, trained.run_id
        if run_id is None:  # a checkpoint in a run folder: the run its state file names
            state = read_state(trained.checkpoint.parent)
            run_id = state.mlflow_run_id if state else None
        saved = saved_settings(model, trained.run_config)
        name = run_id or trained.checkpoint.parent.parent.name
    settings, overrides = command_settings(cfg, saved)
    output = (
        Path(cfg.output).expanduser()
        if cfg.output
        else Path(cfg.paths.output_dir)
        / "exports"
        / name
        / (f"model_{cfg.format}{'_' + cfg.quantize if cfg.quantize else ''}{FORMATS[cfg.format][1]}")
    )
    output = export_model(model, settings, cfg.format, output, cfg.quantize, {"run_id": run_id})
    said = f" (this command's overrides: {', '.join(overrides)})" if overrides else ""
    kind = f"{cfg.format}{' ' + cfg.quantize if cfg.quantize else ''}"
    print(f"Exported {kind} predicting with: {settings.describe()}{said}")
    print(f"  → {output}")
    if cfg.log_to_mlflow and run_id is not None:
        tracker = instantiate(cfg.logger)
        tracker.start(run_id=run_id)
        tracker.log_artifact(output, "exports")
        tracker.log_artifact(metadata_path(output), "exports")
        tracker.finish()
        print(f"Logged to MLflow run {run_id} under exports/ ({cfg.logger.tracking_uri})")
    return output
