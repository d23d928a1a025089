"""A Ray slot starts its judge without running the slot's __main__ script again (grader.batch.cluster
.start_without_main): in a Ray worker that script is Ray's default_worker.py, a second of imports per judge.
Tested on a script of our own run by path, as Ray runs its worker."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import multiprocessing as mp
    import os
    import sys

    with open(sys.argv[1] if __name__ == "__main__" else os.environ["RUNS"], "a") as f:
        f.write(__name__ + "\\n")  # who ran this script's top level

    if __name__ == "__main__":
        from grader.batch.cluster import start_without_main

        os.environ["RUNS"] = sys.argv[1]
        proc = mp.get_context("spawn").Process(target=os.getpid)
        start_without_main(proc) if sys.argv[2] == "clean" else proc.start()
        proc.join()
        print(proc.exitcode, __file__ == sys.argv[0])
""")


@pytest.mark.parametrize("how", ["clean", "plain"])
def test_the_child_does_not_run_the_parents_script(tmp_path, how):
    script, runs = tmp_path / "worker_main.py", tmp_path / "runs"
    script.write_text(SCRIPT)
    r = subprocess.run([sys.executable, str(script), str(runs), how], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "True"]  # the child ran; __main__.__file__ is back as it was
    # plain spawn is the control: it runs the script again as __mp_main__, which is what the slot avoids
    assert runs.read_text().split() == (["__main__"] if how == "clean" else ["__main__", "__mp_main__"])
