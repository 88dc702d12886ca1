"""A version's model card, in French or English, as Markdown or as plain printable HTML.

What a model is, what it was learned from, how well it did (on its training cohort and on
every later cohort it was evaluated on), for whom, its limits, and when it was active. The
figures are written as the API gives them (``repr`` of the float, as JSON does), so the
card and the API agree to the digit.
"""

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.db.models import Activation, Cohort, Evaluation, Model, ModelVersion
from app.services.models import interval_kind

Language = Literal["en", "fr"]
CardFormat = Literal["markdown", "html"]

TEXT: dict[Language, dict[str, str]] = {
    "en": {
        "title": "Model card: {model}, version {version}",
        "intended_use": "Intended use",
        "intended_use_text": (
            "An aid for teachers and school staff, who read a predicted {target} grade next "
            "to everything else they know of a pupil. It is never an automatic decision about "
            "a pupil: GDPR Art. 22 gives everyone the right not to be subject to a decision "
            "based solely on automated processing. Predicting pupils' exam outcomes is a "
            "high-risk use under the EU AI Act (Annex III, 3(b))."
        ),
        "training_data": "Training data",
        "cohort": "Cohort",
        "by_hand": "none: Θ was entered by hand",
        "pupils": "Pupils the fit used",
        "grade_range": "Grade range",
        "feature": "Grade",
        "lowest": "Lowest",
        "highest": "Highest",
        "import_report": "Import report",
        "method": "Method",
        "method_text": (
            "Linear regression as in the course: h_Θ(x) = w0 + Σ wj·xj, Θ chosen to minimise "
            "the empirical risk R(Θ) = (1/n) Σ (h_Θ(xi) − yi)²."
        ),
        "source": "Source",
        "hyperparameters": "Hyperparameters",
        "metrics": "Metrics",
        "training_metrics": "On the training cohort",
        "evaluations": "On later cohorts",
        "no_evaluations": "Not evaluated on a later cohort yet.",
        "figure": "Figure",
        "value": "Value",
        "groups": "Errors by group",
        "no_groups": "No evaluation cohort has groups.",
        "group": "Group",
        "limitations": "Limitations",
        "extrapolation": (
            "Outside the training ranges above, a prediction extrapolates a straight line "
            "nobody checked there (/predict flags it)."
        ),
        "linear": (
            "The model assumes the grade is a weighted sum of the other grades: no "
            "interaction, no threshold, the same weights for every pupil."
        ),
        "interval_ols": (
            "The 95% interval assumes independent Gaussian errors of the same spread for "
            "every pupil, as in the training cohort; a later year may differ."
        ),
        "interval_sigma": (
            "The 95% interval takes Θ as exact and σ as given by hand: it is too narrow if "
            "either is wrong."
        ),
        "interval_none": "This version gives no interval.",
        "erased": "The training cohort has since been erased: its rows can no longer be read.",
        "erased_students": "{n} pupils were erased from the training cohort since the fit.",
        "activations": "Activation history",
        "no_activations": "Never active.",
        "from": "From",
        "to": "To",
        "when": "When",
        "reason": "Reason",
    },
    "fr": {
        "title": "Fiche du modèle : {model}, version {version}",
        "intended_use": "Usage prévu",
        "intended_use_text": (
            "Une aide pour les enseignants et l'équipe éducative, qui lisent une note de "
            "{target} prédite à côté de tout ce qu'ils savent d'un élève. Ce n'est jamais une "
            "décision automatique sur un élève : l'article 22 du RGPD donne à chacun le droit "
            "de ne pas faire l'objet d'une décision fondée exclusivement sur un traitement "
            "automatisé. Prédire les résultats d'examen d'élèves est un usage à haut risque "
            "au sens du règlement européen sur l'IA (annexe III, 3(b))."
        ),
        "training_data": "Données d'apprentissage",
        "cohort": "Promotion",
        "by_hand": "aucune : Θ a été saisi à la main",
        "pupils": "Élèves utilisés pour l'apprentissage",
        "grade_range": "Barème",
        "feature": "Note",
        "lowest": "Minimum",
        "highest": "Maximum",
        "import_report": "Rapport d'import",
        "method": "Méthode",
        "method_text": (
            "Régression linéaire comme dans le cours : h_Θ(x) = w0 + Σ wj·xj, Θ choisi pour "
            "minimiser le risque empirique R(Θ) = (1/n) Σ (h_Θ(xi) − yi)²."
        ),
        "source": "Origine",
        "hyperparameters": "Hyperparamètres",
        "metrics": "Mesures",
        "training_metrics": "Sur la promotion d'apprentissage",
        "evaluations": "Sur des promotions suivantes",
        "no_evaluations": "Pas encore évalué sur une promotion suivante.",
        "figure": "Mesure",
        "value": "Valeur",
        "groups": "Erreurs par groupe",
        "no_groups": "Aucune promotion d'évaluation n'a de groupes.",
        "group": "Groupe",
        "limitations": "Limites",
        "extrapolation": (
            "Hors des plages d'apprentissage ci-dessus, une prédiction prolonge une droite "
            "que personne n'a vérifiée là (/predict le signale)."
        ),
        "linear": (
            "Le modèle suppose que la note est une somme pondérée des autres notes : pas "
            "d'interaction, pas de seuil, les mêmes poids pour chaque élève."
        ),
        "interval_ols": (
            "L'intervalle à 95 % suppose des erreurs gaussiennes indépendantes, de même "
            "dispersion pour chaque élève, comme dans la promotion d'apprentissage ; une "
            "année suivante peut différer."
        ),
        "interval_sigma": (
            "L'intervalle à 95 % tient Θ pour exact et σ tel que saisi à la main : il est "
            "trop étroit si l'un des deux est faux."
        ),
        "interval_none": "Cette version ne donne pas d'intervalle.",
        "erased": (
            "La promotion d'apprentissage a depuis été effacée : ses lignes ne sont plus lisibles."
        ),
        "erased_students": "{n} élèves ont été effacés de la promotion depuis l'apprentissage.",
        "activations": "Historique d'activation",
        "no_activations": "Jamais active.",
        "from": "De",
        "to": "À",
        "when": "Quand",
        "reason": "Raison",
    },
}

EVALUATION_COLUMNS = ("n", "rmse", "mae", "mean_error", "r2", "interval_coverage", "extrapolated")
GROUP_COLUMNS = ("n", "rmse", "mae", "mean_error", "interval_coverage")


def figure(value: Any) -> str:
    """A figure exactly as the API's JSON writes it (floats by repr: every digit)."""
    if value is None:
        return "null"
    if isinstance(value, bool | int | float | str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


Block = Heading | Paragraph | Bullets | Table


@dataclass(frozen=True)
class CardData:
    model: Model
    version: ModelVersion
    cohort: Cohort | None
    evaluations: Sequence[Evaluation]
    activations: Sequence[Activation]


def load_card(session: Session, model: Model, version: ModelVersion) -> CardData:
    cohort = None if version.cohort_id is None else session.get(Cohort, version.cohort_id)
    evaluations = session.scalars(
        select(Evaluation)
        .where(Evaluation.model_version_id == version.id)
        .order_by(Evaluation.created_at, Evaluation.id)
    ).all()
    activations = session.scalars(
        select(Activation)
        .where(
            Activation.model_id == model.id,
            or_(
                Activation.to_version == version.version,
                Activation.from_version == version.version,
            ),
        )
        .order_by(Activation.id)
    ).all()
    return CardData(model, version, cohort, evaluations, activations)


def _training(data: CardData, t: dict[str, str]) -> list[Block]:
    version = data.version
    facts = [
        f"{t['cohort']}: {version.cohort_name or t['by_hand']}",
        f"{t['pupils']}: {figure(version.n_train)}",
        f"{t['grade_range']}: [{figure(version.grade_min)}, {figure(version.grade_max)}]",
    ]
    blocks: list[Block] = [Heading(2, t["training_data"]), Bullets(facts)]
    if version.feature_min is not None and version.feature_max is not None:
        rows = [
            [label, figure(low), figure(high)]
            for label, low, high in zip(
                version.feature_labels, version.feature_min, version.feature_max, strict=True
            )
        ]
        blocks.append(Table([t["feature"], t["lowest"], t["highest"]], rows))
    if data.cohort is not None and data.cohort.import_report:
        blocks.append(Heading(3, t["import_report"]))
        report = data.cohort.import_report
        blocks.append(Table([t["figure"], t["value"]], [[k, figure(report[k])] for k in report]))
    return blocks


def _method(data: CardData, t: dict[str, str]) -> list[Block]:
    version = data.version
    weights = [f"w0 = {figure(version.theta[0])}"] + [
        f"w{j} ({label}) = {figure(w)}"
        for j, (label, w) in enumerate(
            zip(version.feature_labels, version.theta[1:], strict=True), 1
        )
    ]
    blocks: list[Block] = [
        Heading(2, t["method"]),
        Paragraph(t["method_text"]),
        Bullets(weights),
        Paragraph(f"{t['source']}: {version.source}"),
    ]
    if version.hyperparameters:
        blocks.append(Heading(3, t["hyperparameters"]))
        params = version.hyperparameters
        blocks.append(Table([t["figure"], t["value"]], [[k, figure(params[k])] for k in params]))
    return blocks


def _metrics(data: CardData, t: dict[str, str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, t["metrics"])]
    if data.version.metrics:
        metrics = data.version.metrics
        blocks.append(Heading(3, t["training_metrics"]))
        blocks.append(Table([t["figure"], t["value"]], [[k, figure(metrics[k])] for k in metrics]))
    blocks.append(Heading(3, t["evaluations"]))
    if not data.evaluations:
        blocks.append(Paragraph(t["no_evaluations"]))
        return blocks
    rows = [
        [e.cohort_name, *(figure(evaluation_figures(e)[c]) for c in EVALUATION_COLUMNS)]
        for e in data.evaluations
    ]
    blocks.append(Table([t["cohort"], *EVALUATION_COLUMNS], rows))
    return blocks


def evaluation_figures(evaluation: Evaluation) -> dict[str, Any]:
    """An evaluation's figures as the API names them."""
    return {**evaluation.figures, "n": evaluation.n, "rmse": evaluation.rmse}


def _groups(data: CardData, t: dict[str, str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, t["groups"])]
    grouped = [e for e in data.evaluations if e.figures.get("by_group")]
    if not grouped:
        return [*blocks, Paragraph(t["no_groups"])]
    for evaluation in grouped:
        by_group = evaluation.figures["by_group"]
        rows = [
            [label, *(figure(by_group[label][c]) for c in GROUP_COLUMNS)]
            for label in sorted(by_group)
        ]
        blocks.append(Heading(3, evaluation.cohort_name))
        blocks.append(Table([t["group"], *GROUP_COLUMNS], rows))
    return blocks


def _limitations(data: CardData, t: dict[str, str]) -> list[Block]:
    version = data.version
    interval = {"ols": "interval_ols", "sigma": "interval_sigma"}
    kind = interval_kind(version)
    items = [t["extrapolation"], t["linear"], t[interval.get(kind or "", "interval_none")]]
    if version.cohort_erased:
        items.append(t["erased"])
    if version.erased_students:
        items.append(t["erased_students"].format(n=version.erased_students))
    return [Heading(2, t["limitations"]), Bullets(items)]


def _activations(data: CardData, t: dict[str, str]) -> list[Block]:
    blocks: list[Block] = [Heading(2, t["activations"])]
    if not data.activations:
        return [*blocks, Paragraph(t["no_activations"])]
    rows = [
        [figure(a.from_version), figure(a.to_version), a.created_at.isoformat(), a.reason]
        for a in data.activations
    ]
    return [*blocks, Table([t["from"], t["to"], t["when"], t["reason"]], rows)]


def card_blocks(data: CardData, language: Language) -> list[Block]:
    t = TEXT[language]
    title = t["title"].format(model=data.model.name, version=data.version.version)
    return [
        Heading(1, title),
        Heading(2, t["intended_use"]),
        Paragraph(t["intended_use_text"].format(target=data.version.target)),
        *_training(data, t),
        *_method(data, t),
        *_metrics(data, t),
        *_groups(data, t),
        *_limitations(data, t),
        *_activations(data, t),
    ]


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Bullets):
            lines += [*(f"- {item}" for item in block.items), ""]
        else:
            lines.append("| " + " | ".join(_markdown_cell(h) for h in block.headers) + " |")
            lines.append("|" + "---|" * len(block.headers))
            lines += [
                "| " + " | ".join(_markdown_cell(c) for c in row) + " |" for row in block.rows
            ]
            lines.append("")
    return "\n".join(lines)


_STYLE = (
    "body{font-family:serif;max-width:50em;margin:2em auto;padding:0 1em;color:#000}"
    "table{border-collapse:collapse;margin:.5em 0}"
    "th,td{border:1px solid #888;padding:.2em .5em;text-align:left}"
    "@media print{body{margin:0;max-width:none}}"
)


def to_html(blocks: Sequence[Block], language: Language) -> str:
    """One self-contained page: no script, no external style sheet, no image."""
    e = html.escape
    title = next((b.text for b in blocks if isinstance(b, Heading)), "")
    parts = [
        f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{e(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{e(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in block.items) + "</ul>")
        else:
            head = "".join(f"<th>{e(h)}</th>" for h in block.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_card(
    session: Session, model: Model, version: ModelVersion, language: Language, form: CardFormat
) -> str:
    blocks = card_blocks(load_card(session, model, version), language)
    return to_html(blocks, language) if form == "html" else to_markdown(blocks)


def preferred_language(accept_language: str | None) -> Language:
    """French when the caller's most preferred language (by q) is French, else English."""
    best: tuple[float, str] | None = None
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and (best is None or quality > best[0]):
            best = (quality, tag.strip().lower())
    return "fr" if best is not None and best[1].split("-")[0] == "fr" else "en"


def preferred_format(requested: CardFormat | None, accept: str | None) -> CardFormat:
    """``?format=`` first, then the Accept header: HTML when it asks for text/html."""
    if requested is not None:
        return requested
    return "html" if "text/html" in (accept or "") else "markdown"
