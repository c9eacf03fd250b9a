"""scripts/gen_places_agencies.py: the STIP-seeded agency table keeps only distinctive names."""

from __future__ import annotations

import csv
from pathlib import Path
import subprocess
import sys
import tomllib

from conftest import REPO, shared_data


def run_generator(path: Path) -> dict:
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_places_agencies.py"), str(path)],
                         capture_output=True, text=True, check=True, timeout=120)
    return tomllib.loads(out.stdout)


def test_generator_keeps_distinctive_names_only(tmp_path: Path) -> None:
    export = tmp_path / "stip.csv"
    rows = [
        ("Research Council of Norway (RCN;Norges forskningsråd)", "NOR"),
        ("Higher education institutions (HEIs;)", "NOR"),
        ("Ministry of Education (MOE;)", "NOR"),
        ("Ministry of Education (MOE;)", "FIN"),
        ("Business Finland (BF;)", "FIN"),
        ("Zorblax Innovation Agency (ZORBLAX;Zorblax Innovaatio)", "FIN"),
        ("UNESCO National Commission (;)", "FIN"),
        ("Federal Science Policy (BELSPO;Federaal Wetenschapsbeleid)", "BEFED"),
        ("European Commission (EC;)", "EU"),
    ]
    with open(export, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["NameResponsibleOrganisation", "CountryCode"])
        writer.writerows(rows)
    data = run_generator(export)
    assert data["version"]
    countries = data["country"]
    assert "Research Council of Norway" in countries["NO"]["agencies"]
    assert "Norges forskningsråd" in countries["NO"]["agencies"]
    assert "RCN" not in countries["NO"]["agencies"]          # three letters: too ambiguous
    assert "Higher education institutions" not in countries["NO"]["agencies"]
    assert "HEIs" not in countries["NO"]["agencies"]
    fi = countries["FI"]["agencies"]
    assert "Business Finland" in fi and "ZORBLAX" in fi and "Zorblax Innovaatio" in fi
    assert not any("UNESCO" in term for term in fi)            # a multilateral body
    assert all("Ministry of Education" not in terms["agencies"] for terms in countries.values())
    assert "BELSPO" in countries["BE"]["agencies"]              # Belgian governments -> BE
    assert "European Commission" in countries["EU"]["agencies"]


def test_shipped_table_names_real_agencies() -> None:
    from classifier.places import Gazetteer

    data = tomllib.loads((REPO / "classifier" / "data" / "places_agencies.toml").read_text("utf-8"))
    assert "CONCYTEC" in data["country"]["PE"]["agencies"]
    gazetteer = Gazetteer.load()
    for title, code in [("CONCYTEC opens call", "PE"), ("TÜBİTAK opens call", "TR"),
                        ("FAPESP funds centres", "BR"), ("Innosuisse backs start-ups", "CH")]:
        assert [c for c, _ in gazetteer.tag(title, "")] == [code], title


def test_generator_runs_on_the_real_training_export() -> None:
    path = shared_data("stip-compass-2021/stip_2021_train.csv.gz")
    data = run_generator(path)
    assert len(data["country"]) >= 55
