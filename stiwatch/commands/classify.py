"""`stiwatch classify`, `train`, `evaluate` and `tag`: the classifier's commands."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from classifier.taxonomy import UnknownLabel, load_taxonomy, spelt
from db.tags import FACETS

from ..app import App, pass_app
from ..errors import UserError
from ..output import counted, echo_json, echo_table

# The model modules load scikit-learn: imported inside the commands that need them, so every
# other command starts quickly.

if TYPE_CHECKING:
    from classifier.components import Lexicons
    from classifier.explain import Found
    from classifier.pipeline import Classifier
    from classifier.stip import Example
    from classifier.taxonomy import Taxonomy

# Hand-written, labelled news briefs shipped in classifier/data/ for training (train
# --bundled-news), beside the demo site's articles.
BUNDLED_NEWS = "news_labelled.jsonl"

model_dir_option = click.option(
    "--model-dir", metavar="DIR",
    help="Folder of the trained model [default: setting model_dir, $STIWATCH_MODEL_DIR]; a "
    "folder named here or in a setting must exist (empty: the lexicon rules).",
)
no_model_option = click.option(
    "--no-model", is_flag=True, help="Ignore any trained model: use the lexicon rules only.",
)


def _model_dir(app: App, option: str | None) -> Path:
    if option:
        app.settings.override("model_dir", option, "option --model-dir")
    return Path(app.settings["model_dir"])


def model_folder(app: App, option: str | None = None) -> Path:
    """The model folder classify, evaluate, run and demo read, refused (UserError, exit 2)
    when it is a file, or when it does not exist and was named (--model-dir, the environment,
    a settings file): a mistyped path would otherwise classify with the lexicon rules, saying
    only "no trained model in PATH". Only the default folder may be absent: no model yet."""
    folder = _model_dir(app, option)
    origin = app.settings.origin("model_dir")
    # os.path's tests answer False where Path's would raise (a name too long)
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise UserError(f"{folder}: is a file, not a folder of trained models (model_dir is "
                        f"set by {origin})")
    if origin != "default" and not os.path.isdir(folder):
        raise UserError(f"{folder}: no such model folder (model_dir is set by {origin}): a "
                        "mistyped path? Create the folder to classify with the lexicon rules "
                        "until `stiwatch train` saves a model in it")
    return folder


LEXICON_SETTINGS = ("domains_lexicon", "areas_lexicon", "places_lexicon")


def load_lexicons(app: App) -> "Lexicons":
    """The lexicon components with the analyst's files the settings name; a malformed file is
    a UserError naming the file and the setting that points at it. No model is loaded."""
    from classifier.components import load_lexicons as load
    from classifier.lexicon import LexiconError

    paths = {name: app.settings[name] or None for name in LEXICON_SETTINGS}
    try:
        return load(**paths)
    except LexiconError as error:
        # the message names the file; the user also needs to know which setting points at it
        named = [name for name, path in paths.items() if path and str(path) in str(error)]
        where = "".join(f" ({name} is set by {app.settings.origin(name)})" for name in named)
        raise UserError(f"{error}{where}") from None


def check_classifier(app: App) -> "Lexicons":
    """What loading the classifier would refuse, found without loading the model: the
    analyst's lexicon files (loaded, and returned for load_classifier) and the saved models'
    metadata (ModelError or ModelMismatch for a model made for other versions)."""
    from classifier.artifacts import check_saved_models

    folder = model_folder(app)
    lexicons = load_lexicons(app)
    check_saved_models(folder)
    return lexicons


def load_classifier(app: App, model_dir: str | None = None, *, use_model: bool = True,
                    lexicons: "Lexicons | None" = None) -> "Classifier":
    """The classifier with the configured model folder (rules only when it holds no model; a
    named folder must exist, see model_folder), built on ``lexicons`` when they were loaded
    already (see check_classifier)."""
    from classifier.pipeline import Classifier

    folder = model_folder(app, model_dir) if use_model else _model_dir(app, model_dir)
    return Classifier.load(folder, use_model=use_model,
                           lexicons=lexicons or load_lexicons(app),
                           rules_override=app.settings["area_rules_override"])


def run_classification(app: App, *, everything: bool = False, model_dir: str | None = None,
                       use_model: bool = True, lexicons: "Lexicons | None" = None
                       ) -> dict[str, Any]:
    """Classify the store's new (or all) items with a progress line; a JSON-able report.

    Shared by `stiwatch classify`, `stiwatch run` (which passes the ``lexicons`` it loaded
    before crawling) and `stiwatch demo`.
    """
    # The store first: a missing database is one error line, not one after the classifier's.
    store = app.store()
    # a mistyped folder is said before any work, not as "no trained model"
    folder = model_folder(app, model_dir) if use_model else None
    pending = len(store.unclassified_ids(everything=everything))
    if not pending:
        # Loading the model takes seconds; a scheduled classify with nothing new needs none of
        # it. A model this code would refuse (after an upgrade) is still said now, from its
        # metadata.
        from classifier.artifacts import check_saved_models
        from classifier.report import ClassifyReport

        if folder is not None:
            check_saved_models(folder)
        return {**ClassifyReport(description="not loaded: nothing to classify").as_dict(),
                "summary": "0 items classified: none new since the last classify (the "
                           "classifier was not loaded)"}
    from classifier.pipeline import classify_store

    classifier = load_classifier(app, model_dir, use_model=use_model, lexicons=lexicons)
    app.echo(f"Classifier: {classifier.describe()}", err=True)
    progress = app.progress("classify", unit="items")
    with progress:
        progress.set_total(pending)
        report = classify_store(store, classifier, everything=everything,
                                progress=progress.advance)
    result = report.as_dict()
    used = (f"model {report.model}" if report.model else
            "lexicon rules (trained model set aside)" if classifier.model_set_aside else
            "lexicon rules (no trained model)")
    # a rate only where items were classified (copying a duplicate's tags is no classifying)
    rate = (f", {report.classified / report.seconds:.0f} items/s"
            if report.classified and report.seconds else "")
    result["summary"] = (
        f"{counted(report.classified + report.inherited, 'item')} classified with {used}"
        f" ({counted(report.inherited, 'duplicate')} inherited "
        f"{'its' if report.inherited == 1 else 'their'} original's tags), "
        f"{report.policy} policy-relevant{rate}"
        + (f"; the analyst corrections of {counted(report.corrected, 'item')} kept"
           if report.corrected else "")
        + (f"; {counted(report.changed, 'item')} changed while being classified (an analyst's "
           f"correction, a new text) {'is' if report.changed == 1 else 'are'} left for the "
           "next classify" if report.changed else "")
    )
    return result


@click.command("classify")
@click.option("--all", "everything", is_flag=True,
              help="Classify every item again, not only those never classified.")
@model_dir_option
@no_model_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@pass_app
def classify_command(app: App, everything: bool, model_dir: str | None, no_model: bool,
                     as_json: bool) -> None:
    """Tag items with policy relevance, policy areas, domains, countries and regions.

    Uses the trained model in the model folder when there is one (see `stiwatch train`),
    otherwise the lexicon rules, and says which. A folder named by --model-dir,
    $STIWATCH_MODEL_DIR or the model_dir setting must exist (exit 2 naming it otherwise);
    only the default one may be missing. With nothing to classify it loads neither
    (a saved model made for other versions is still refused, from its metadata) and says
    so. Tags an analyst set with `stiwatch tag` are never overwritten; near-duplicates
    inherit their original's tags. While a `stiwatch restore` runs it waits for it (up to
    10 s, else exit 3, nothing changed) and tags the restored store.
    """
    # Tags written into the store a restore then moves aside would be lost (a `classify --all`
    # undone while it said done): wait for the restore and tag the store it puts in place.
    app.keep_restore_out()
    result = run_classification(app, everything=everything, model_dir=model_dir,
                                use_model=not no_model)
    if as_json:
        echo_json(result)
    else:
        click.echo(result["summary"] + ".")


FEED_PATTERNS = ("*.xml", "*.rss", "*.atom")


def _feed_entries(path: str) -> list["Example"]:
    """One saved feed's entries, its bytes decoded as the crawler decodes a fetched feed: a
    feed saved from a Japanese site without its HTTP charset (Shift_JIS, EUC-JP) gave the
    model titles of mojibake to learn from. The crawler only decodes; the classifier reads."""
    from classifier.model import feed_entries
    from crawler.feeds import feed_as_utf8

    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise UserError(f"{path}: cannot read this feed file ({error.strerror})") from None
    return feed_entries(path, feed_as_utf8(data))


def _feed_negatives(paths: tuple[str, ...], say: Callable[[str], None]
                    ) -> tuple[list["Example"], list[str]]:
    """The --negatives entries (repeated titles folded) and the files they came from.

    A file named on the command line must give entries (FeedFileError otherwise); in a folder,
    a file that gives none is skipped, and said so, but a folder none of whose files gives any
    is refused like an empty one.
    """
    from classifier.errors import FeedFileError
    from classifier.model import fold_feed_entries

    read: dict[Path, list["Example"]] = {}
    for path in paths:
        if os.path.isdir(path):
            found = sorted(f for pattern in FEED_PATTERNS
                           for f in glob.glob(os.path.join(path, pattern)))
            if not found:
                raise UserError(f"{path}: no feed files ({', '.join(FEED_PATTERNS)}) in this "
                                "folder")
            for file in found:
                try:
                    read[Path(file)] = _feed_entries(file)
                except FeedFileError as error:
                    say(f"skipped {error}")
            if not any(Path(file) in read for file in found):
                raise UserError(f"{path}: none of its {counted(len(found), 'feed file')} "
                                f"({', '.join(FEED_PATTERNS)}) has entries to use as "
                                "non-policy news")
        elif os.path.isfile(path):
            read[Path(path)] = _feed_entries(path)
        else:
            raise UserError(f"{path}: no such feed file or folder")
    files = sorted(read)  # name order, as feed_negatives() folds them
    return fold_feed_entries(read[f] for f in files), [str(f) for f in files]


def _labelled_news(files: tuple[str, ...], bundled: bool, with_negatives: bool,
                   taxonomy: "Taxonomy") -> list[dict[str, Any]]:
    """Records of the --labelled files, then (``bundled``) the news shipped with stiwatch."""
    from classifier.evaluate import read_eval_file
    from classifier.lexicon import data_file
    from stiwatch.demo.site import labelled_records

    from classifier.errors import EvalFileError

    records, problems = [], []
    for path in files:  # every file's problems at once, as each file's lines are
        try:
            records += read_eval_file(path, taxonomy)
        except EvalFileError as error:
            problems.append(str(error))
    if problems:
        raise EvalFileError("\n".join(problems))
    if bundled:
        shipped = labelled_records() + read_eval_file(data_file(BUNDLED_NEWS), taxonomy)
        # Its 43 non-policy items alone are too few to say what is not policy (the demo's 18
        # alone, trained without --negatives, made all 6 non-policy test briefs look like
        # policy): they join only beside the feeds' non-policy news.
        records += [r for r in shipped if with_negatives or r["policy"] == 1]
    return records


def _analyst_labelled(app: App) -> list[dict[str, Any]]:
    """The store's analyst corrections; none before there is a store (a model can be trained
    before the first crawl), without creating one."""
    if not app.db_path.exists():
        return []
    return app.store().analyst_labelled_items()


@click.command("train")
@click.option("--stip", "stip_file", required=True, metavar="FILE",
              help="The OECD STIP Compass CSV export (.csv or .csv.gz).")
@click.option("--negatives", multiple=True, metavar="PATH",
              help="Feed file or folder of non-policy news (science, general) used as "
                   "negatives for relevance; repeatable.")
@click.option("--labelled", "labelled_files", multiple=True, metavar="FILE.jsonl",
              help="Hand-labelled items, one JSON object a line (the format `stiwatch "
                   "evaluate` reads: docs/classifier.md, Labelled JSON Lines files), folded in with the weight of analyst corrections: your "
                   "own news teaches the model news phrasing; repeatable.")
@click.option("--bundled-news/--no-bundled-news", default=True, show_default=True,
              help="Fold in the hand-labelled news that ships with stiwatch (the demo site's "
                   "English articles and classifier/data/news_labelled.jsonl).")
@click.option("--limit", type=click.IntRange(min=10), metavar="N",
              help="Use only the first N initiatives (quick trials and tests).")
@click.option("--folds", type=click.IntRange(2, 10), default=3, show_default=True, metavar="N",
              help="Cross-validation folds for thresholds and reported metrics.")
@model_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the model metadata as JSON.")
@pass_app
def train_command(app: App, stip_file: str, negatives: tuple[str, ...],
                  labelled_files: tuple[str, ...], bundled_news: bool, limit: int | None,
                  folds: int, model_dir: str | None, as_json: bool) -> None:
    """Train the policy-relevance and policy-area model and save it in the model folder.

    Positives and areas come from the STIP Compass export (theme codes mapped to areas as
    the taxonomy says); negatives from the --negatives feeds and from items analysts marked
    `policy=0`; every analyst correction in the store is folded in, and so are hand-labelled
    news (--labelled files and, unless --no-bundled-news, the news that ships with stiwatch:
    the STIP export holds programme descriptions, not news). Per-area thresholds are
    chosen by cross-validation on this training data only. The previous model is replaced
    only once the new one is saved. A country model is trained from the initiatives'
    countries (and countries analysts gave, or removed: a negative for that country) and saved
    beside it: it tags a country when the
    text names none and the source has no home country, narrows a policy text naming
    several countries to the one it is about, and reads ambiguous agency names ("NRF"). With
    enough initiatives, a ranker learnt with it chooses the countries of STI-policy programme
    descriptions, where its cross-validation beats the thresholds'.
    """
    from classifier.artifacts import check_model_dir
    from classifier.errors import ModelDirError
    from classifier.model import (
        analyst_samples, labelled_samples, save_model, stip_samples, train,
    )
    from classifier.rules import RuleTagger
    from classifier.stip import file_sha256, read_stip

    # what classify, evaluate and run will read, before --model-dir overrides it here
    configured, configured_by = app.settings["model_dir"], app.settings.origin("model_dir")
    folder = _model_dir(app, model_dir)
    try:  # now, not after a training of a minute or more whose work would be lost
        check_model_dir(folder)
    except ModelDirError as error:
        raise UserError(f"{error} (model_dir is set by {app.settings.origin('model_dir')})"
                        ) from None
    taxonomy = load_taxonomy()
    say = (lambda message: None) if (as_json or app.quiet) else (
        lambda message: click.echo(f"train: {message}", err=True))
    say(f"reading {stip_file}")
    examples = read_stip(stip_file, limit=limit, taxonomy=taxonomy)
    samples = stip_samples(examples)
    negative_examples, feeds = _feed_negatives(negatives, say)
    samples += stip_samples(negative_examples)
    corrected = _analyst_labelled(app)
    analyst = analyst_samples(corrected, taxonomy)
    samples += analyst
    labelled = labelled_samples(
        _labelled_news(labelled_files, bundled_news, bool(feeds), taxonomy), taxonomy)
    samples += labelled
    say(f"{counted(len(examples), 'initiative')}, "
        f"{counted(sum(s.origin == 'feed' for s in samples), 'feed negative')}, "
        f"{counted(len(analyst), 'analyst-labelled item')}, {len(labelled)} labelled news")
    digest = file_sha256(stip_file)
    rules = RuleTagger.load(app.settings["areas_lexicon"] or None)
    model = train(samples, taxonomy=taxonomy, data_sha256=digest, folds=folds,
                  rule_areas=rules.areas, progress=say)
    model.metadata["rules_version"] = rules.version
    model.metadata["training_data"] = {
        "stip_file": os.path.basename(stip_file), "stip_sha256": digest, "limit": limit,
        "negative_feeds": [os.path.basename(f) for f in feeds],
        "labelled_files": [{"file": os.path.basename(f), "sha256": file_sha256(f)}
                           for f in labelled_files],
        "bundled_news": bundled_news,
    }
    save_model(model, folder)
    meta = model.metadata
    from classifier.countries import (
        MIN_EXAMPLES, analyst_examples, save_country_model, train_countries,
    )
    from classifier.places import Gazetteer
    from classifier.stip import has_country_column

    countries = train_countries(examples + analyst_examples(corrected),
                                Gazetteer.load(), taxonomy=taxonomy,
                                data_sha256=digest, folds=folds, version=meta["version"],
                                progress=say)
    if countries is not None:
        save_country_model(countries, folder)
        meta = {**meta, "countries": countries.metadata}
    else:
        # Said, not silent: without it an export lacking its country column gives a model that
        # quietly tags fewer countries than the last one.
        why = ("no CountryCode or CountryLabel column" if not has_country_column(stip_file)
               else f"fewer than two countries with {MIN_EXAMPLES} initiatives or more")
        # an older country model must not stay beside this one (it belongs to another model)
        removed = False
        for name in ("countries.joblib", "countries.json"):
            if (folder / name).exists():
                (folder / name).unlink()
                removed = True
        meta = {**meta, "countries_not_trained": {"reason": why,
                                                  "removed_older_model": removed}}
    if as_json:
        echo_json({"model_dir": str(folder), **meta})
        return
    areas = (meta["cv_metrics"].get("areas") or {})
    policy = meta["cv_metrics"].get("policy")
    click.echo(f"Saved model {meta['version']} to {folder} ({meta['train_seconds']}s).")
    # a result, not progress: `train -q` must still say whether the store's corrections counted
    counts = meta["training_counts"]
    # an item whose country an analyst removed counts: the model learns it is not that one
    by_countries = ""
    if "countries" in meta:
        learnt = meta["countries"]["training_counts"]
        by_countries = f", {learnt['analyst'] + learnt['analyst_removals']} for countries"
    analysts = (f"the analysts' corrections of {counted(len(corrected), 'item')} "
                f"({counts.get('analyst', 0)} for relevance and areas{by_countries})"
                if corrected else "no analyst corrections (none in the store)")
    click.echo(f"  learnt from {counted(counts.get('stip', 0), 'initiative')}, "
               f"{counted(counts.get('feed_negatives', 0), 'feed negative')}, "
               f"{counts.get('labelled', 0)} labelled news and {analysts}")
    if policy:
        click.echo(f"  relevance (cv): precision {policy['precision']:.3f}, "
                   f"recall {policy['recall']:.3f}, f1 {policy['f1']:.3f}")
    else:
        # The bundled labelled news's non-policy items join only beside --negatives (see
        # _labelled_news): without this, "no negatives" beside "25 labelled news" puzzles.
        click.echo("  relevance: no negatives (pass --negatives FEEDS, which also brings in "
                   "the bundled news's non-policy items, or label items policy=0); the "
                   "lexicon rules decide relevance")
    if areas:
        click.echo(f"  areas (cv): micro-F1 {areas['micro_f1']:.3f}, "
                   f"macro-F1 {areas['macro_f1']:.3f}")
    if "countries" in meta:
        cv = meta["countries"]["cv_metrics"]
        click.echo(f"  countries (cv, with the gazetteer): micro-F1 {cv['combined']['f1']:.3f} "
                   f"(gazetteer alone {cv['gazetteer']['f1']:.3f})")
        ranker = cv.get("ranker") or {}
        if ranker.get("used"):
            click.echo(f"  countries of programme descriptions (cv): ranker micro-F1 "
                       f"{ranker['f1']:.3f} (thresholds {ranker['rules_f1']:.3f})")
        elif ranker:
            click.echo(f"  countries: no ranker ({ranker['reason']})")
    else:
        skipped = meta["countries_not_trained"]
        click.echo(f"  countries: {skipped['reason']}: country model not trained")
        if skipped["removed_older_model"]:
            click.echo(f"  countries: the country model of an earlier training was removed "
                       f"from {folder}")
    # research_security is never learnt, by design, whatever analysts label: "no training
    # data" told an analyst who had just tagged items with it that they were not read
    stip_areas = set(load_taxonomy().stip_themes.values())
    without = meta["labels"]["areas_without_data"]
    never = [area for area in without if area not in stip_areas]
    few = [area for area in without if area in stip_areas]
    if never:
        click.echo(f"  not learnt, by design: {', '.join(never)} (no STIP theme maps to it; "
                   "the lexicon rules tag it)")
    if few:
        click.echo(f"  too few examples to learn: {', '.join(few)} (the lexicon rules tag "
                   "these)")
    if Path(configured).expanduser().resolve() != folder.expanduser().resolve():
        # `classify --all` right after `train --model-dir DIR` would otherwise go on with the
        # old model (or the rules), saying only which folder it read
        click.echo(f"  classify, evaluate and run read the model_dir setting ({configured}, "
                   f"{configured_by}), not this folder: pass them --model-dir {folder}, or set "
                   f"model_dir (STIWATCH_MODEL_DIR) to it")


@click.command("evaluate")
@click.argument("file", metavar="FILE.jsonl")
@model_dir_option
@no_model_option
@click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object.")
@click.option("--errors", "errors", type=click.IntRange(min=0), default=0, metavar="N",
              help="Also list the first N items the classifier got wrong, with what each "
                   "facet missed and added, and count them all (keys `errors` and `wrong` "
                   "with --json).")
@pass_app
def evaluate_command(app: App, file: str, model_dir: str | None, no_model: bool,
                     as_json: bool, errors: int) -> None:
    """Score the classifier on a labelled JSON Lines file.

    FILE has one JSON object per line: title or text (or both), and any of policy (0 or 1),
    areas, domains, countries (lists of taxonomy ids), id (a string); see docs/classifier.md,
    "Labelled JSON Lines files".

    Prints precision, recall and F1 for relevance, per-label scores for areas and domains and
    micro scores for countries (n/a where undefined); a facet that no line labels is left out.
    Areas are scored on lines whose policy is 1 or not given. Never train or tune on the file
    you evaluate with. A file with bad lines is refused (exit 2) with every problem listed, one
    line each naming the line (the first 20, then a count).
    """
    from classifier.evaluate import evaluate, read_eval_file

    if not no_model:  # a mistyped model folder, before the file is read
        model_folder(app, model_dir)
    # The file first: a wrong path or bad lines are refused before loading the model.
    records = read_eval_file(file)
    classifier = load_classifier(app, model_dir, use_model=not no_model)
    if not as_json:
        app.echo(f"Classifier: {classifier.describe()}", err=True)
    result = evaluate(file, classifier, errors, records=records)
    if as_json:
        echo_json(result)
        return
    click.echo(f"{counted(result['n'], 'item')}, classifier {result['model_version']}")
    if "policy" in result:
        click.echo("\npolicy")
        echo_table([_shown({"facet": "policy", **result["policy"]})],
                   ["facet", "precision", "recall", "f1"])
    for facet in ("areas", "domains"):
        if facet in result:
            block = result[facet]
            click.echo(f"\n{facet}: micro-F1 {_score(block['micro_f1'])}, "
                       f"macro-F1 {_score(block['macro_f1'])}")
            echo_table([_shown({"label": label, **m}) for label, m in block["per_label"].items()],
                       ["label", "precision", "recall", "f1", "support"])
    if "countries" in result:
        c = result["countries"]
        click.echo("\ncountries")
        echo_table([_shown({"facet": "countries", "precision": c["micro_precision"],
                            "recall": c["micro_recall"], "f1": c["micro_f1"]})],
                   ["facet", "precision", "recall", "f1"])
    if errors:
        wrong = result["errors"]
        # the total, and whether the list is all of it: "the first 4" of 4 read as "more"
        shown = "" if len(wrong) == result["wrong"] else f" (the first {len(wrong)})"
        click.echo(f"\n{result['wrong']} of {counted(result['n'], 'item')} classified wrong"
                   f"{shown}:"
                   if wrong else "\nno item classified wrong")
        for row in wrong:
            click.echo(f"{row['id']}: {row['title'][:70]}")
            for facet, diff in row.items():
                if facet == "policy":
                    click.echo(f"  policy: labelled {diff['gold']}, classified {diff['predicted']}")
                elif facet not in ("id", "title"):
                    parts = [f"missed {', '.join(diff['missing'])}" if diff["missing"] else "",
                             f"added {', '.join(diff['extra'])}" if diff["extra"] else ""]
                    click.echo(f"  {facet}: {'; '.join(p for p in parts if p)}")


# How an undefined metric (None in evaluate's JSON: nothing predicted, nothing labelled) reads.
UNDEFINED = "n/a"


def _score(value: float | None) -> str:
    return UNDEFINED if value is None else f"{value:.3f}"


def _facets_by_version(tags: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each classifier version that wrote some of ``tags`` (an analyst's have none), with the
    facets it wrote, in order."""
    facets: dict[str, list[str]] = {}
    for tag in tags:
        if tag["model_version"]:
            written = facets.setdefault(tag["model_version"], [])
            if tag["facet"] not in written:
                written.append(tag["facet"])
    return facets


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A table row with its undefined metrics as "n/a" (the table leaves None blank)."""
    return {key: UNDEFINED if value is None else value for key, value in row.items()}


def _facet_value(raw: str) -> tuple[str, bool, str]:
    """``FACET=VALUE`` as (facet, whether "=" was given, value), spelt as the taxonomy spells
    labels: the facet in lower case, the value as ``spelt`` says."""
    facet, sep, value = raw.partition("=")
    facet, value = facet.strip().lower(), value.strip()
    return facet, bool(sep), spelt(facet, value)


def _check_label(taxonomy: "Taxonomy", option: str, raw: str, facet: str, value: str) -> None:
    try:
        taxonomy.check(facet, value)
    except UnknownLabel as error:
        raise UserError(f"{option} {raw!r}: {error}") from None


def _pairs(values: tuple[str, ...], option: str) -> list[tuple[str, str]]:
    taxonomy = load_taxonomy()
    pairs = []
    for raw in values:
        facet, sep, value = _facet_value(raw)
        if not sep or not facet or not value:
            raise UserError(f"{option} {raw!r}: expected FACET=VALUE, e.g. area=open_science")
        _check_label(taxonomy, option, raw, facet, value)
        pairs.append((facet, value))
    return pairs


def _undo_specs(values: tuple[str, ...], corrected: set[tuple[str, str]]
                ) -> list[tuple[str, str | None]]:
    """The --undo values as (facet, value), value None for a whole facet. A value the taxonomy
    lacks is still taken back when the item has a correction of it (a label since dropped
    from the taxonomy); otherwise it is refused like a misspelt --add."""
    taxonomy = load_taxonomy()
    specs: list[tuple[str, str | None]] = []
    for raw in values:
        facet, sep, value = _facet_value(raw)
        if not facet or (sep and not value):
            raise UserError(f"--undo {raw!r}: expected FACET or FACET=VALUE, e.g. country "
                            "or area=open_science")
        if facet not in FACETS:
            raise UserError(f"--undo {raw!r}: unknown facet {facet!r} (expected "
                            f"{', '.join(FACETS[:-1])} or {FACETS[-1]})")
        if not sep:
            specs.append((facet, None))
            continue
        if (facet, value) not in corrected:
            _check_label(taxonomy, "--undo", raw, facet, value)
        specs.append((facet, value))
    return specs


def _verdicts_text(verdicts: list[tuple[str, str, int]]) -> str:
    return ", ".join(f"{'added' if verdict else 'removed'} {facet}={value}"
                     for facet, value, verdict in verdicts)


def _undo_lines(item_id: int, specs: list[tuple[str, str | None]],
                undone: list[tuple[str, str, int]], left: list[tuple[str, str, int]]
                ) -> list[str]:
    """What --undo took back, and each --undo that found no correction to take back."""
    lines = []
    if undone:
        lines.append(f"Item {item_id}: undid {len(undone)} analyst correction"
                     f"{'s' if len(undone) > 1 else ''} ({_verdicts_text(undone)}): the next "
                     "`stiwatch classify` (or `run`) tags the item anew.")
    missed = [f"{facet}={value}" if value is not None else facet for facet, value in specs
              if not any(f == facet and (value is None or v == value) for f, v, _ in undone)]
    if missed:
        # say what there is to undo: the analyst may have the wrong item or value in mind
        have = (f"its corrections: {_verdicts_text(left)}" if left
                else "it has no analyst corrections")
        lines.append(f"Item {item_id}: nothing to undo for {', '.join(missed)}: no analyst "
                     f"correction of {'it' if len(missed) == 1 else 'them'} ({have}).")
    return lines


# The terms listed for one label under `tag --why`; the rest are counted.
WHY_TERMS = 8
# Where a tag without lexicon evidence came from, by its method.
_TAGGED_BY = {"source": "the source's home country (the text names no country the "
                        "gazetteer could rank)",
              "model": "the trained model (the lexicon rules found no term for it)",
              "rules": "the lexicon rules, from no term (without policy cues an item is not "
                       "policy-relevant)",
              "analyst": "an analyst (`stiwatch tag --add`)"}


def _evidence(app: App, item: dict[str, Any]) -> list["Found"]:
    """The lexicon evidence of ``item``'s text, read with the analyst's lexicon files too."""
    from classifier.explain import explain_item
    from classifier.pipeline import item_text

    return explain_item(load_lexicons(app), item_text(item))


def _why_lines(tags: list[dict[str, Any]], evidence: list["Found"],
               original: int | None) -> list[str]:
    """`tag --why`: each tag with the terms behind it, then the labels the lexicons found
    evidence for that are not tagged (too little, or outweighed). ``original``: the item a
    near-duplicate copied its tags from."""
    found = {(f.facet, f.value): f for f in evidence}
    lines = ["Why: the lexicon terms found in the text (those in the title and first sentences "
             "weigh more; a trained model's part in policy and areas is not itemised):"]
    if original is not None:
        lines.append(f"  (a near-duplicate: its tags are item {original}'s, the terms its own "
                     "text's)")

    def terms(f: "Found") -> str:
        most = sorted(f.terms.items(), key=lambda pair: -pair[1])  # ties: as first found
        listed = [term if n == 1 else f"{term} x{n}" for term, n in most[:WHY_TERMS]]
        more = len(f.terms) - WHY_TERMS
        return ", ".join(listed) + (f" and {more} more" if more > 0 else "")

    for tag in tags:
        key = (tag["facet"], tag["value"])
        label = f"{tag['facet']}={tag['value']}"
        if key in found and tag["method"] not in ("source", "analyst"):
            lines.append(f"  {label}: evidence {found[key].evidence:g}: {terms(found[key])}")
        elif tag["facet"] == "region" and tag["method"] != "analyst" and key not in found:
            lines.append(f"  {label}: from the countries tagged")
        else:
            lines.append(f"  {label}: {_TAGGED_BY.get(tag['method'], tag['method'])}")
    tagged = {(tag["facet"], tag["value"]) for tag in tags}
    untagged = [f for f in evidence if (f.facet, f.value) not in tagged]
    if untagged:
        lines.append("Found, not tagged (too little evidence, or outweighed):")
        lines += [f"  {f.facet}={f.value}: evidence {f.evidence:g}: {terms(f)}" for f in untagged]
    return lines


@click.command("tag")
@click.argument("item_id", type=int, metavar="ITEM_ID")
@click.option("--add", "add", multiple=True, metavar="FACET=VALUE",
              help="Add a tag, e.g. area=open_science, country=JP, policy=1; repeatable.")
@click.option("--remove", "remove", multiple=True, metavar="FACET=VALUE",
              help="Remove a tag and keep it removed, e.g. country=US; repeatable.")
@click.option("--undo", "undo", multiple=True, metavar="FACET[=VALUE]",
              help="Take back an analyst's --add or --remove, e.g. country=US, or every "
                   "correction of a facet (area), so the classifier decides again; repeatable.")
@click.option("--why", is_flag=True,
              help="Also say why each tag is there: the lexicon terms found in the item's text "
                   "for it (and for labels the rules found too little of), else the source's "
                   "country, the trained model or an analyst.")
@click.option("--json", "as_json", is_flag=True, help="Print the item's tags as JSON.")
@pass_app
def tag_command(app: App, item_id: int, add: tuple[str, ...], remove: tuple[str, ...],
                undo: tuple[str, ...], why: bool, as_json: bool) -> None:
    """Correct an item's tags as an analyst; without options, show its tags.

    Added tags are never overwritten by `stiwatch classify`, removed ones are not written
    back (and are listed below the tags), and `stiwatch train` learns from both. Facets:
    policy (1 or 0: one verdict, added, never removed; areas are for policy items, so
    policy=0 removes the classifier's areas and the next `classify` tags a policy=1 item's),
    area, domain, country (ISO code or EU), region. Regions follow the countries: adding
    country=JP adds region east_asia (method analyst), removing a region's last country
    removes the region. The item's near-duplicates take its corrected tags at once.

    --undo takes a correction back: the verdict leaves the item and the training data, and
    the item is marked so that the next `stiwatch classify` (or `run`) tags it anew, as if
    the analyst had never touched that tag (a removed country may come back). Its copies
    follow at once. --undo country takes back every country correction; it runs before
    --add and --remove, so `--undo country --add country=KR` starts the countries afresh.

    While a `stiwatch restore` runs, a correction waits for it (up to 10 s, else exit 3,
    nothing changed) and is made in the restored store.

    \b
    Examples:
      stiwatch tag 81
      stiwatch tag 81 --why
      stiwatch tag 81 --add area=open_science --remove country=US
      stiwatch tag 81 --add policy=0
      stiwatch tag 81 --undo area=open_science --undo country=US
    """
    from classifier.places import region_map

    if add or remove or undo:
        # A correction written into the store a `stiwatch restore` is about to move aside,
        # after it read the corrections to carry over, would be lost: it waits for the
        # restore (or is refused, exit 3) and goes into the restored store.
        app.keep_restore_out()
        store = app.store()
    else:
        # showing an item's tags writes nothing: a read-only copy of the store shows them too
        store = app.existing_store()
    additions, removals = _pairs(add, "--add"), _pairs(remove, "--remove")
    clash = set(additions) & set(removals)
    if clash:
        facet, value = sorted(clash)[0]
        raise UserError(f"{facet}={value} is both added and removed")
    added = removed = 0
    original = store.get_item(item_id)["duplicate_of"]  # NoSuchItem for an unknown id
    before = store.analyst_verdicts(item_id)
    undos = _undo_specs(undo, {(facet, value) for facet, value, _verdict in before})
    for facet, value in undos:
        if (facet, value) in additions or (facet, value) in removals:
            raise UserError(f"{facet}={value} is both undone and "
                            f"{'added' if (facet, value) in additions else 'removed'}")
    undone: list[tuple[str, str, int]] = []
    if undos or additions or removals:
        with store.write():  # all or nothing: the undo and the corrections of one command
            if undos:
                undone = store.analyst_undo(item_id, undos, region_of=region_map())
            if additions or removals:
                # the regions follow the analyst's countries, as the classifier's follow its own
                added, removed = store.analyst_label(item_id, add=additions, remove=removals,
                                                     region_of=region_map())
        if original is not None and (undone or additions or removals):
            # the copy keeps its correction, but readers never see a copy's tags
            app.echo(f"Note: item {item_id} is a near-duplicate of item {original}: digests "
                     f"and trends read item {original}'s tags, so correct item {original} to "
                     "change what readers see (its copies inherit that).", err=True)
    tags = store.tags_of(item_id)
    if (any(facet == "area" for facet, _value in additions)
            and any((t["facet"], t["value"]) == ("policy", "0") for t in tags)):
        # `train` reads an area as a "yes" to policy, but digests and trends read the verdict
        app.echo(f"Note: item {item_id} is tagged not policy-relevant (policy=0): digests and "
                 "trends leave it out whatever its areas; add policy=1 to include it.",
                 err=True)
    if ("policy", "1") in additions and not any(t["facet"] == "area" for t in tags):
        app.echo(f"Note: item {item_id} has no policy areas yet: the next `stiwatch classify` "
                 "(or `run`) tags them, or add them with --add area=...", err=True)
    # A removal leaves no tag to show: without this line the analyst could not see what is
    # being kept away, nor why a tag the text names never comes back.
    kept_away = [(facet, value) for facet, value, verdict in store.analyst_verdicts(item_id)
                 if not verdict]
    evidence = _evidence(app, store.get_item(item_id)) if why else []
    if as_json:
        shown: dict[str, Any] = {
            "item_id": item_id, "tags": tags,
            "removed": [{"facet": facet, "value": value} for facet, value in kept_away]}
        if undos:
            shown["undone"] = [{"facet": facet, "value": value, "verdict": verdict}
                               for facet, value, verdict in undone]
        if why:
            tagged = {(t["facet"], t["value"]) for t in tags}
            shown["evidence"] = [{**found.as_dict(), "tagged": (found.facet, found.value)
                                  in tagged} for found in evidence]
        echo_json(shown)
        return
    for line in _undo_lines(item_id, undos, undone,
                            [v for v in before if v not in undone]):
        app.echo(line)
    if additions or removals:
        unchanged = len(set(additions)) + len(set(removals)) - added - removed
        app.echo(f"Item {item_id}: {added} added, {removed} removed"
                 + (f", {unchanged} already as asked." if unchanged else "."))
    # A classifier's version runs to 90 characters (its model and each lexicon's version): a
    # table column cut it mid-date, so each version is written whole under the table, after what it
    # tagged.
    echo_table(tags, ["facet", "value", "score", "method"])
    for version, facets in _facets_by_version(tags).items():
        click.echo(f"{', '.join(facets)} tagged by classifier {version}")
    if kept_away:
        click.echo("Removed by an analyst (never tagged again): "
                   + ", ".join(f"{facet}={value}" for facet, value in kept_away))
    if why:
        click.echo("")
        for line in _why_lines(tags, evidence, original):
            click.echo(line)
