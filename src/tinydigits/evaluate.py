"""Score a model on the test set: accuracy, loss, per-class precision and recall, confusions, mistakes.

    report = evaluate_probabilities(model.predict(x), y)      # pure numpy, any model's outputs
    report["accuracy"], report["confusion"]                   # float, 10x10 list (rows: true)
    report, names = evaluate_run(Run("runs/lesson"))          # + confusion.png, mistakes.png, evaluation.json
    report, names, files = evaluate_folder(Run("runs/lesson"), Path("my_digits"))  # your own pictures
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .artifacts import preflight, save_figure, staged_folder, write_json
from .atomic import claim
from .folders import load_image_folder
from .plots import confusion_matrix_figure, image_gallery
from .predict import predict_digits
from .runs import RUN_FILES, Run

EPS = 1e-7  # Keras' epsilon: probabilities are clipped to [eps, 1-eps] before the log


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(probabilities[np.arange(len(labels)), labels], EPS, 1 - EPS)
    return float(-np.mean(np.log(p)))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n: int = 10) -> np.ndarray:
    return np.bincount(labels.astype(np.int64) * n + predicted, minlength=n * n).reshape(n, n)


def evaluate_probabilities(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """(N, 10) probabilities and (N,) labels -> the report `tinydigits evaluate --json` prints."""
    predicted = probabilities.argmax(axis=1)
    confusion = confusion_matrix(labels, predicted, probabilities.shape[1])
    true_pos = np.diag(confusion).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.nan_to_num(true_pos / confusion.sum(axis=0))
        recall = np.nan_to_num(true_pos / confusion.sum(axis=1))
    return {
        "accuracy": float((predicted == labels).mean()),
        "loss": cross_entropy(probabilities, labels),
        "n": int(len(labels)),
        "precision": [round(float(p), 4) for p in precision],
        "recall": [round(float(r), 4) for r in recall],
        "confusion": confusion.tolist(),
    }


def confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, k: int = 24) -> np.ndarray:
    """Indices of the k wrong answers given with the highest confidence, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    return wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:k]


def format_report(report: dict, class_names: list[str]) -> str:
    lines = [f"{report.get('set', 'test')} accuracy {report['accuracy']:.4f}   cross-entropy loss {report['loss']:.4f}   "
             f"({report['n']} images)", "", f"{'class':>12}  precision  recall"]
    for name, p, r in zip(class_names, report["precision"], report["recall"]):
        lines.append(f"{name:>12}  {p:9.4f}  {r:6.4f}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              "      " + "".join(f"{i:>6}" for i in range(len(class_names)))]
    for i, row in enumerate(report["confusion"]):
        lines.append(f"{i:>6}" + "".join(f"{n:>6}" for n in row))
    return "\n".join(lines)


def evaluate_run(run: Run, command: str = "") -> tuple[dict, list[str]]:
    """Score a `Run`'s model on its test set; add confusion.png, mistakes.png, evaluation.json as one set."""
    with claim(run.folder, wait=True, command=command):  # a second writer of the run waits for this one
        run.refresh()  # what a writer we waited for changed
        preflight(run.folder, resume="run")
        ds = run.dataset()
        probabilities = predict_digits(run.model(), ds.x_test)
        report = evaluate_probabilities(probabilities, ds.y_test)
        mistakes = confident_mistakes(probabilities, ds.y_test)
        report["mistakes"] = [int(i) for i in mistakes]
        captions = [f"#{i}: {ds.y_test[i]}->{probabilities[i].argmax()} ({probabilities[i].max():.2f})" for i in mistakes]
        with staged_folder(run.folder, "run", command, update=True) as tmp:
            save_figure(confusion_matrix_figure(np.array(report["confusion"]), ds.class_names), tmp / RUN_FILES.confusion)
            save_figure(image_gallery(ds.x_test[mistakes], captions, "most confidently wrong (true->predicted)"),
                        tmp / RUN_FILES.mistakes)
            write_json(tmp / RUN_FILES.evaluation, report)
        return report, ds.class_names


EVALUATIONS = "evaluations"  # RUN/evaluations/<folder name>/: the reports of `evaluate --images`


def evaluate_folder(run: Run, folder: Path, command: str = "") -> tuple[dict, list[str], list[Path]]:
    """Score a `Run`'s model on your own labelled pictures (folders.py's layout), preprocessed as `predict`
    does; RUN/evaluations/<name>/ gets confusion.png, mistakes.png and evaluation.json as one set."""
    folder = Path(folder)
    images, labels, files = load_image_folder(folder)  # a bad folder is refused before the run is locked
    probabilities = predict_digits(run.model(), images)
    report = {"set": str(folder), **evaluate_probabilities(probabilities, labels)}
    mistakes = confident_mistakes(probabilities, labels)
    report["mistakes"] = [{"file": str(files[i]), "label": int(labels[i]), "digit": int(probabilities[i].argmax()),
                           "confidence": round(float(probabilities[i].max()), 4)} for i in mistakes]
    captions = [f"{files[i].name}: {labels[i]}->{probabilities[i].argmax()} ({probabilities[i].max():.2f})" for i in mistakes]
    where = Path(EVALUATIONS) / ((folder.stem if folder.suffix.lower() == ".zip" else folder.resolve().name) or "images")
    names = [RUN_FILES.confusion, RUN_FILES.mistakes, RUN_FILES.evaluation]
    with claim(run.folder, wait=True, command=command):  # a second writer of the run waits for this one
        preflight(run.folder, resume="run")
        with staged_folder(run.folder, "run", command, update=True) as tmp:
            save_figure(confusion_matrix_figure(np.array(report["confusion"]), [str(d) for d in range(10)]),
                        tmp / where / RUN_FILES.confusion)
            save_figure(image_gallery(images[mistakes], captions, f"{folder}: most confidently wrong (true->predicted)"),
                        tmp / where / RUN_FILES.mistakes)
            write_json(tmp / where / RUN_FILES.evaluation, report)
    return report, [str(d) for d in range(10)], [run.folder / where / name for name in names]
