"""Regenerate the README's checked examples from one fresh run (the blocks marked `<!-- checked -->`).

Runs every checked block as tests/test_readme.py does, in a temporary workspace, and writes each
command's fresh output into README.md in place of the old one: figures, sizes and times all new,
the `...` elisions kept where the output still has the same shape (a command whose output changed
shape is written whole, to be trimmed by hand: the script names it). Without --write it prints the
diff and changes nothing.

    TINYDIGITS_DATA=../shared/datasets python bench/readme_outputs.py            # what would change
    TINYDIGITS_DATA=../shared/datasets python bench/readme_outputs.py --write    # README.md updated
"""
import argparse
import difflib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from readme_examples import README, align, problems, readme_examples, regenerated, run_examples  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite README.md with the fresh outputs")
    parser.add_argument("--keep", type=Path, help="run in this folder (kept) instead of a temporary one")
    args = parser.parse_args()
    examples = readme_examples(README)
    with tempfile.TemporaryDirectory(prefix="tinydigits-readme-") as tmp:
        workspace = args.keep or Path(tmp)
        results = run_examples(examples, workspace)
    for example, outputs in zip(examples, results):
        for (command, expected), actual in zip(example.commands, outputs):
            if align(expected, actual, loose=True) is None:
                print(f"README line {example.line + 1}: `$ {command}` changed shape: written whole, trim it by hand",
                      file=sys.stderr)
    old = README.read_text()
    new = regenerated(old, examples, results)
    sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "README.md", "README.md (fresh)"))
    if args.write:
        README.write_text(new)
        print(f"wrote {README}", file=sys.stderr)
    left = problems(readme_examples(README) if args.write else examples, results)
    print(f"{len(left)} example(s) differ from the README" + (" after the rewrite" if args.write else ""), file=sys.stderr)


if __name__ == "__main__":
    main()
