"""The `reproduce` extra: mining, labeling and analysis import without torch, onnx, onnxruntime;
the reproduce stage of a study is skipped with a note naming the extra."""

import subprocess
import sys
import textwrap

from tests.conftest import ROOT

BLOCK_HEAVY = textwrap.dedent("""
    import importlib, pkgutil, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "onnx", "onnxruntime"):
                raise ImportError(f"blocked: {name}")
    sys.meta_path.insert(0, Block())
""")


def test_mining_labeling_and_analysis_import_without_the_extra():
    code = BLOCK_HEAVY + textwrap.dedent("""
        failed, seen = [], 0
        for package in ("reeng", "miner", "taxonomy", "analysis"):
            root = importlib.import_module(package)
            for info in pkgutil.walk_packages(root.__path__, package + "."):
                if "reproduc" in info.name or "reuse" in info.name or info.name.endswith("__main__"):
                    continue
                seen += 1
                try:
                    importlib.import_module(info.name)
                except ImportError as exc:
                    failed.append(f"{info.name}: {exc}")
        print(seen, failed)
        assert seen > 20 and not failed, failed
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_study_stage_is_skipped_without_torch(monkeypatch, tmp_path):
    import importlib.util

    from analysis.reproduction.study_stage import reproduce_stage

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    result = reproduce_stage(None)  # never reaches the context
    assert result["skipped"] == "torch not installed" and "reeng[reproduce]" in result["lines"][0]
