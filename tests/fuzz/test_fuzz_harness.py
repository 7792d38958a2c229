"""The fuzz harness itself keeps working (a few hundred plain-mode inputs, seconds): it
generates calls of every public function, many of which succeed and pass the oracles. Findings
are not asserted here (tests/fuzz/test_fuzz_regressions.py holds the known ones; the CI smoke
run `python tests/fuzz/fuzz_api.py --plain --seconds 20 --seed 0` fails on any)."""

from . import fuzz_api


def test_harness_drives_every_public_function(tmp_path):
    args, _ = fuzz_api.parse(["--plain", "--collect", "--findings-dir", str(tmp_path),
                              "--report-every", "1e9"])
    campaign = fuzz_api.Campaign(args)
    for seed in range(600):
        campaign.one(fuzz_api.PlainSource(seed), "seed %d" % seed)
    names = set(fuzz_api.public_functions())
    assert len(names) >= 15
    assert set(campaign.by_function) == names, names - set(campaign.by_function)
    assert set(campaign.ok_by_function) == names, names - set(campaign.ok_by_function)
    assert sum(campaign.ok_by_function.values()) >= 60
    assert any(k.startswith("error:") for k in campaign.outcomes)
