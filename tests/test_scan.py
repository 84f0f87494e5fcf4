"""``uapfp scan``: many suspects at once, each with the verdict ``uapfp verify`` gives it."""

from __future__ import annotations

import json

import pytest

from uapfp.cli import EXIT_INCONCLUSIVE, main
from uapfp.errors import ConfigError
from uapfp.scan import ScanSettings, read_targets

KEYS = ("verdict", "p_value", "similarity", "queries", "method", "kit_sha256", "per_fingerprint", "null_models", "p_floor")


def _suspects(tiny_kit, tiny_zoo):
    held = set(tiny_kit.info["models"]["heldout"])
    cards = {c["id"]: c for c in tiny_zoo.cards}
    pick = [next(i for i in sorted(held) if cards[i]["role"] == role) for role in ("piracy", "homologous")]
    pick.append(sorted(i for i in held if cards[i]["role"] == "piracy")[-1])
    return [cards[i]["_path"] for i in pick]


def test_scan_gives_each_suspect_the_verdict_verify_gives_it(tiny_kit, tiny_zoo, tmp_path, capsys):
    specs = _suspects(tiny_kit, tiny_zoo)
    expected = []
    for k, spec in enumerate(specs):
        main(["-q", "verify", "--kit", str(tiny_kit.path), "--suspect", spec, "--json", str(tmp_path / f"v{k}.json")])
        expected.append(json.loads((tmp_path / f"v{k}.json").read_text()))
    assert {e["verdict"] for e in expected} == {"piracy", "not shown"}  # the case can tell a wrong answer

    out = tmp_path / "scan"
    listing = tmp_path / "suspects.txt"
    listing.write_text(f"# two from a file\n{specs[1]}\n\n{specs[2]}  # the last copy\n")
    code = main(["-q", "scan", "--kit", str(tiny_kit.path), specs[0], "--from", str(listing), "--out", str(out),
                 "--workers", "3"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["spec"] for r in summary["suspects"]] == specs
    for row, want in zip(summary["suspects"], expected):
        got = json.loads((out / f"{row['name']}.json").read_text())
        assert {k: got[k] for k in KEYS} == {k: want[k] for k in KEYS}
        assert (out / f"{row['name']}.queries.jsonl").is_file() and got["query_log_sha256"]
        assert row["verdict"] == want["verdict"]
        assert row["p_floor"] == want["p_floor"] < want["alpha"] and not row["exact_copy_not_shown"]
    table = capsys.readouterr().out
    assert "3 of 3 suspects decided" in table and "would not be shown" not in table

    # A rerun queries nobody again; a suspect that cannot be opened gets an error row, the others go on.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.queries.jsonl")}
    code = main(["-q", "scan", "--kit", str(tiny_kit.path), *specs, str(tmp_path / "nothing.onnx"), "--out", str(out)])
    assert code == EXIT_INCONCLUSIVE
    rows = json.loads((out / "summary.json").read_text())["suspects"]
    assert [r["verdict"] for r in rows] == [e["verdict"] for e in expected] + ["error"]
    assert all(r["resumed"] for r in rows[:3]) and "nothing.onnx" in rows[3]["error"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.queries.jsonl")} == stamps

    # Other settings are another verification: fewer sets query the suspect again.
    main(["-q", "scan", "--kit", str(tiny_kit.path), specs[0], "--out", str(out), "--fingerprints", "4"])
    row = json.loads((out / "summary.json").read_text())["suspects"][0]
    assert not row["resumed"] and json.loads((out / f"{row['name']}.json").read_text())["fingerprints"] == 4
    # a verdict written before verdicts held their floor is verified again, not resumed without one
    name = rows[1]["name"]
    old = json.loads((out / f"{name}.json").read_text())
    (out / f"{name}.json").write_text(json.dumps({k: v for k, v in old.items() if k != "p_floor"}))
    main(["-q", "scan", "--kit", str(tiny_kit.path), specs[1], "--out", str(out)])
    row = json.loads((out / "summary.json").read_text())["suspects"][0]
    assert not row["resumed"] and row["p_floor"] == old["p_floor"]


def test_a_scan_says_which_not_shown_verdicts_no_copy_could_escape(tiny_kit, tiny_zoo, tmp_path, capsys):
    copy = _suspects(tiny_kit, tiny_zoo)[0]
    out = tmp_path / "scan"
    # at a level below what an exact copy of the victim gets, the copy is not shown, and the summary says why
    assert main(["-q", "scan", "--kit", str(tiny_kit.path), copy, "--out", str(out), "--alpha", "1e-15"]) == 0
    (row,) = json.loads((out / "summary.json").read_text())["suspects"]
    record = json.loads((out / f"{row['name']}.json").read_text())
    assert row["verdict"] == record["verdict"] == "not shown" and row["exact_copy_not_shown"]
    assert row["p_floor"] == record["p_floor"] >= 1e-15
    level = (record["sequential"].get("levels") or [record["alpha"]])[-1]  # the last look's, or alpha itself
    assert 0 < level <= 1e-15 and f"not below the level {level:.3g};" in record["message"]
    table = capsys.readouterr().out
    assert f"even an exact copy would not be shown (p {row['p_floor']:.3g})" in table
    assert "1 'not shown' verdict(s) by a test that would not show even an exact copy" in table


def test_scan_on_ray_matches_the_threads(tiny_kit, tiny_zoo, family_null, tmp_path, monkeypatch):
    import shutil

    import ray

    from uapfp.scan import scan

    # and one against a family null, which a worker loads itself, its weights named relative to this folder
    monkeypatch.chdir(tmp_path)
    shutil.copy(family_null.path / "models" / f"{family_null.info['models'][1]['name']}.safetensors", "w.safetensors")
    listing = tmp_path / "suspects.txt"
    listing.write_text(f"uapfp.archs.classic:mlp w.safetensors family-null={family_null.path}\n")
    targets = read_targets(_suspects(tiny_kit, tiny_zoo), listing)
    local = scan(tiny_kit.path, targets, tmp_path / "local", workers=3, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = scan(tiny_kit.path, targets, tmp_path / "ray", ray_address="local", progress=False)
    finally:
        ray.shutdown()
    # A Ray worker runs torch on one thread, this process on two: the scores agree to float rounding.
    strip = ("seconds", "verdict_file", "p_value", "similarity")
    assert [{k: v for k, v in vars(r).items() if k not in strip} for r in remote] == [
        {k: v for k, v in vars(r).items() if k not in strip} for r in local
    ]
    for r, s in zip(remote, local):
        assert r.similarity == pytest.approx(s.similarity, abs=1e-5)
        assert r.p_value == pytest.approx(s.p_value, rel=1e-4)
    for r in remote:
        record = json.loads((tmp_path / "ray" / f"{r.name}.json").read_text())
        assert record["query_log"] == str(tmp_path / "ray" / f"{r.name}.queries.jsonl")
        from uapfp.storage import sha256_file

        assert record["query_log_sha256"] == sha256_file(record["query_log"])
    assert record["family_null"]["sha256"] == family_null.sha256 and record["null_count"] == 5  # the last: its null
    assert remote[-1].family_null == [str(family_null.path)]


def test_a_scan_tests_a_suspect_against_the_family_null_its_line_names(family_null, tiny_kit, tiny_zoo, tmp_path,
                                                                       capsys):  # fmt: skip
    kit, null = str(tiny_kit.path), str(family_null.path)
    weights = str(family_null.path / "models" / f"{family_null.info['models'][0]['name']}.safetensors")
    card = next(c for c in tiny_zoo.cards if c["role"] == "piracy")["_path"]
    mlp = ["--suspect", "uapfp.archs.classic:mlp", "--weights", weights]
    expected = {}
    for name, extra in (("null", ["--family-null", null]), ("kit", [])):
        main(["-q", "verify", "--kit", kit, *mlp, *extra, "--json", str(tmp_path / f"{name}.json")])
        expected[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert expected["null"]["null_count"] == 5 != expected["kit"]["null_count"]  # the case tells the nulls apart
    keys = (*KEYS, "family_null")

    # an MLP with the MLP null; a zoo card (another architecture) with it: refused, the others go on; one without
    out, listing = tmp_path / "scan", tmp_path / "suspects.txt"
    listing.write_text(f"uapfp.archs.classic:mlp {weights} family-null={null}\n{card} family-null={null}\n{card}\n")
    assert (
        main(["-q", "scan", "--kit", kit, "--from", str(listing), "--out", str(out), "--workers", "2"])
        == EXIT_INCONCLUSIVE
    )
    rows = json.loads((out / "summary.json").read_text())["suspects"]
    assert [r["family_null"] for r in rows] == [[null], [null], []]
    got = json.loads((out / f"{rows[0]['name']}.json").read_text())
    assert {k: got[k] for k in keys} == {k: expected["null"][k] for k in keys}
    assert got["family_null"]["architecture_checked"] is True and f"--family-null {null}" in got["command"]
    assert rows[1]["verdict"] == "error" and "holds honest models of mlp" in rows[1]["error"]
    assert not (out / f"{rows[1]['name']}.queries.jsonl").exists()  # refused before any query
    assert rows[2]["verdict"] in ("piracy", "not shown")
    assert json.loads((out / f"{rows[2]['name']}.json").read_text())["family_null"] == {}
    assert "family null" in capsys.readouterr().out

    # rerun: the same nulls resume; the same suspect without its null, or with another, is verified again
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.queries.jsonl")}
    main(["-q", "scan", "--kit", kit, "--from", str(listing), "--out", str(out)])
    rows = json.loads((out / "summary.json").read_text())["suspects"]
    assert [r["resumed"] for r in rows] == [True, False, True]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.queries.jsonl")} == stamps
    listing.write_text(f"uapfp.archs.classic:mlp {weights}\n")
    main(["-q", "scan", "--kit", kit, "--from", str(listing), "--out", str(out)])
    got = json.loads((out / f"{rows[0]['name']}.json").read_text())
    assert {k: got[k] for k in keys} == {k: expected["kit"][k] for k in keys}
    main(["-q", "scan", "--kit", kit, "--from", str(listing), "--out", str(out), "--family-null", null])  # every line's
    row = json.loads((out / "summary.json").read_text())["suspects"][0]
    got = json.loads((out / f"{row['name']}.json").read_text())
    assert not row["resumed"] and {k: got[k] for k in keys} == {k: expected["null"][k] for k in keys}

    # a worker (on Ray) refuses a null that is not the one the scan checked
    from uapfp.scan import Target, _verify_remote

    target = Target("uapfp.archs.classic:mlp", weights, "w", (null,))
    with pytest.raises(ConfigError, match="not the one the scan checked"):
        _verify_remote(kit, ScanSettings(), [], target, "0" * 64)

    # a file name that passes to another suspect when the list changes is verified again, not resumed
    import shutil

    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        shutil.copy(family_null.path / "models" / f"{family_null.info['models'][int(sub == 'b')]['name']}.safetensors",
                    tmp_path / sub / "m.safetensors")  # fmt: skip
    lines = [f"uapfp.archs.classic:mlp {tmp_path / sub / 'm.safetensors'}" for sub in ("a", "b")]
    swap = tmp_path / "swap"
    for order in (lines, lines[::-1]):
        listing.write_text("\n".join(order) + "\n")
        main(["-q", "scan", "--kit", kit, "--from", str(listing), "--out", str(swap)])
        rows = json.loads((swap / "summary.json").read_text())["suspects"]
        assert [r["name"] for r in rows] == ["m", "m-2"] and not any(r["resumed"] for r in rows)
        assert [json.loads((swap / f"{r['name']}.json").read_text())["scan_target"]["weights"] for r in rows] == [
            line.split()[1] for line in order
        ]

    # a folder that is no family null refuses the scan before any query, and writes nothing
    capsys.readouterr()
    bad = ["-q", "scan", "--kit", kit, "--from", str(listing), "--out", str(tmp_path / "none"), "--family-null"]
    assert main([*bad, str(tmp_path)]) == 2 and "not a family null" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_suspect_lists_name_each_suspect_once(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("models/a.json\nhttp://h:1/v2/models/a\npkg.m:f w/b.safetensors\n")
    names = [t.name for t in read_targets(["onnx:x/a.onnx"], listing)]
    assert names == ["a", "a-2", "a-3", "b"]
    assert read_targets([], listing)[2].weights == "w/b.safetensors"
    listing.write_text("a b c\n")
    with pytest.raises(ConfigError, match="list.txt:1"):
        read_targets([], listing)
    # a line's own family null, else the one given for all
    listing.write_text("pkg.m:f w/b.safetensors family-null=nulls/mlp family-null=nulls/mlp-2ep\nmodels/c.json\n")
    targets = read_targets(["models/a.json"], listing, family_null=["nulls/cnn"])
    assert [(t.weights, t.family_null) for t in targets] == [
        (None, ("nulls/cnn",)), ("w/b.safetensors", ("nulls/mlp", "nulls/mlp-2ep")), (None, ("nulls/cnn",))
    ]  # fmt: skip
    for line in (
        "a b c family-null=n",
        "family-null=n",
        "a family-null=",
        "a family-null=n b",
        "a family-null=n family-null=n",
    ):
        listing.write_text(line + "\n")
        with pytest.raises(ConfigError, match="list.txt:1"):
            read_targets([], listing)
    with pytest.raises(ConfigError, match="not a suspect"):
        read_targets(["family-null=n"])
    with pytest.raises(ConfigError, match="no suspects"):
        read_targets([])
