"""Regenerate classifier/data/places_agencies.toml from an OECD STIP Compass export.

Usage: python scripts/gen_places_agencies.py STIP_EXPORT.csv[.gz] > classifier/data/places_agencies.toml

Each initiative names its responsible organisations as "English name (ACRONYM;Native name)",
several separated by "¬". An organisation name or acronym becomes a gazetteer term for the
country when it is distinctive: used by one country only in the export, not a bare generic
title ("Ministry of Education", "National Research Council"), and for acronyms at least three
characters with two capitals that are not an English word. A name that names another country
or the EU ("Ministry of Foreign Affairs of Italy", "European Union", "EACEA" reported by a
partner country) is a partner's, not the reporting country's, and is left out: the gazetteer
as it stands (places.toml and the other tables) decides. Only the training split is used here
(stip_2021_train.csv.gz), never the evaluation split.
"""

from __future__ import annotations

from collections import defaultdict
import csv
import gzip
from pathlib import Path
import re
import sys

import pycountry

GENERIC = set("""
of and for the a in on to de la le les des du el y e und für fur der die das di del
ministry ministries department departments office agency agencies council councils committee
foundation fund funds institute institutes centre center centres centers authority board
commission secretariat secretary state general national federal central public government
science sciences scientific research researchers technology technologies technological innovation
innovations innovative education educational higher university universities development economic
economy economics affairs industry industrial trade energy health culture cultural sports sport
youth business businesses employment labour labor digital digitalisation digitalization
communications communication information transport infrastructure environment environmental
climate agriculture food rural regional region regions finance financial enterprise enterprises
investment investments promotion support programme program policy planning strategic strategy
technical academy academies network organisation organization association services service
social welfare medical resources knowledge skills learning training productive productivity
competitiveness growth internal interior foreign defence defense justice mining mines natural
maritime fisheries tourism administration executive presidency president prime minister
ministers cabinet parliament house institution institutions organisations organizations
entities entity partners partner implementing body bodies advisory group groups various other
all local municipal municipalities universities' schools school hospitals companies firms
government/regional/local stakeholders experts expert panel working consortium consortia
intermediary intermediaries independent private sector sectors ministerial interministerial agriculture telecommunications ict ict, s&t r&d rdi sti
""".split())
GENERIC_ABBREVIATIONS = set("""
STEM HEI TTO SME ICT PHD CEO GDP RDI STI NGO NGOS PPP ERA ESS EEA IPR IP AI HPC PRO PROS RTO RTI
UNI EU UN EC EIB ESF ERDF EAFRD ESIF RRF RRP NRRP OP UNIT SSC TCS MEP ACD CUT ABC PSA ICO SEC CPC
""".split())
ENGLISH = set("""
unit stem cut data best fund open team time case care cost core life link list plan path
rise safe seed star
aim arc art best big can care case core cost ease era even fast fit for gap hope ice key lead
life link list most new now one open path plan rise safe seed sun top use war way win
""".split())


def alpha2(code: str) -> str | None:
    if code == "EU":
        return "EU"
    if code.startswith("BE") and len(code) > 3:
        return "BE"  # Belgian federal and regional governments
    country = pycountry.countries.get(alpha_3=code)
    return country.alpha_2 if country else None


def parse(org: str) -> tuple[str, str, str]:
    match = re.match(r"^(.*?)\s*\(([^;()]*);([^()]*)\)\s*$", org.strip())
    if not match:
        return org.strip(), "", ""
    return match.group(1).strip(), match.group(2).strip(), match.group(3).strip()


def distinctive_name(name: str) -> bool:
    """At least two words, one of them not generic vocabulary ("Research Council of Norway",
    "Gouvernement français"; not "Higher education institutions", "Implementing partners"), and
    in a script with capitals, some capital: an all-lower-case name ("foreign offices") is a
    description, and would match case-insensitively everywhere."""
    if name == name.lower() and name != name.upper():
        return False
    words = re.findall(r"[\w'&-]+", name.lower())
    return len(words) >= 2 and any(w not in GENERIC and not w.isdigit() for w in words)


def good_acronym(acr: str) -> bool:
    """4-12 characters with two capitals, neither an English word nor a generic abbreviation
    ("STEM", "HEIs", "UNIT"). Three-letter acronyms are left to the hand-written table in
    places.toml: thousands of organisations share that space, so only well-known ones are safe."""
    return (4 <= len(acr) <= 12 and sum(c.isupper() for c in acr) >= 2 and " " not in acr
            and acr.lower() not in ENGLISH and acr.upper().rstrip("S") not in GENERIC_ABBREVIATIONS)


def multilateral_bodies() -> set[str]:
    """Terms of places.toml's [international] table: never a country's agency."""
    return set(_places()["international"]["bodies"])


def _places() -> dict:
    import tomllib

    places = Path(__file__).resolve().parents[1] / "classifier" / "data" / "places.toml"
    return tomllib.loads(places.read_text("utf-8"))


# The EU's seat stands for it in news ("Brussels wants..."), and is in the names of the Belgian
# capital region's own bodies ("Brussels Regional Public Service").
SEATS = {"Brussels"}


def hand_written() -> set[tuple[str, str]]:
    """(code, term) of every term places.toml lists for a country."""
    return {(code, term) for code, kinds in _places()["country"].items()
            for terms in kinds.values() for term in terms}


def names_another(term: str, code: str, gazetteer, hand: set[tuple[str, str]]) -> bool:
    """True when the gazetteer reads another country (by its name, demonym, capital or an
    agency places.toml lists) or the EU in ``term``."""
    hits = gazetteer._hits(term, "")[0]
    return any(not key[0].startswith("@")
               and (key[1] in ("name", "demonym", "capital") or key[0] == "EU"
                    or (key[0], key[2]) in hand)
               for _weight, keys in hits
               if all(key[0] != code and key[2] not in SEATS for key in keys)
               for key in keys)


def main(path: str) -> None:
    bodies = multilateral_bodies()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from classifier import places

    # the gazetteer without the file being generated (its own terms would match whole)
    places.PLACE_FILES = tuple(name for name in places.PLACE_FILES
                               if name != "places_agencies.toml")
    gazetteer = places.Gazetteer.load()
    hand = hand_written()
    owners: dict[str, set[str]] = defaultdict(set)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    with gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            code = alpha2(row.get("CountryCode", ""))
            if not code:
                continue
            for org in (row.get("NameResponsibleOrganisation") or "").split("¬"):
                if not org.strip():
                    continue
                english, acronym, native = parse(org)
                terms = []
                if distinctive_name(english):
                    terms.append(english)
                if acronym and good_acronym(acronym):
                    terms.append(acronym)
                if native and native != english and distinctive_name(native):
                    terms.append(native)
                for term in terms:
                    term = " ".join(term.split())
                    if term in bodies or term.split()[0] in bodies:
                        continue  # "UNESCO National Commission" names the UN body, not a country
                    owners[term].add(code)
                    counts[(term, code)] += 1
    by_country: dict[str, list[str]] = defaultdict(list)
    for term, codes in owners.items():
        if len(codes) == 1 and not names_another(term, next(iter(codes)), gazetteer, hand):
            by_country[next(iter(codes))].append(term)
    print("# Generated by scripts/gen_places_agencies.py from the OECD STIP Compass 2021 export")
    print("# (training split only): responsible organisations named by one country only.")
    print("# Do not edit by hand: add or correct agencies in places.toml, which is read too.")
    print()
    print('version = "stip2021-train.2"')
    for code in sorted(by_country):
        terms = sorted(set(by_country[code]), key=lambda term: (term.lower(), term))
        print()
        print(f"[country.{code}]")
        print("agencies = [")
        for term in terms:
            escaped = term.replace("\\", "\\\\").replace('"', '\\"')
            print(f'  "{escaped}",')
        print("]")


if __name__ == "__main__":
    main(sys.argv[1])
