"""foxpipe from the command line: ``python -m foxpipe <command> ...``.

Commands live in ``COMMANDS`` (name -> (add its arguments, run it)); each run function takes
the parsed arguments and returns the process's exit code.

``make --answers A.json [B.json ...] --out DIR [--approve-all] [--video slideshow|kling|hailuo]
[--narration | --no-narration] [--voice NAME] [--music FILE] [--length SECONDS]``: the app's flow
without a browser (see ``foxpipe.make``); exit 0 when every story was made, 1 when one failed,
2 for bad answers (with the quiz's messages).

``check --reference REF IMAGE...``: prints one JSON line per image, ``{"image", "on_model",
"score", "defects", "note"}``, comparing each image with the hero's reference sheet. With
``OPENAI_API_KEY`` in the environment the OpenAI vision model checks; without it the embedded
check does. Exit code 0 when every image was checked, 1 when a check failed, 2 for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from foxpipe.config import load_settings
from foxpipe.providers.base import VisionCheck

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
MAX_IMAGE_BYTES = 50 * 1024 * 1024


def _read(path: str, what: str) -> bytes:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_IMAGE_BYTES:
            raise ValueError(f"the {what} {path} is larger than 50 MB")
        data = p.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read the {what} {path}: {e.strerror or e}") from e
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"the {what} {path} is not an image foxpipe can read") from e
    return data


def add_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference", required=True, help="the hero's reference sheet (PNG, JPEG, WebP)"
    )
    parser.add_argument(
        "--scene",
        type=int,
        default=0,
        help="scene number of the images (1-20), when the form matters; default: not said",
    )
    parser.add_argument(
        "--reference-text", default="", help="the hero's description, sent along with the reference"
    )
    parser.add_argument(
        "--offline", action="store_true", help="use the embedded check even with an OpenAI key"
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="images to check")


def run_check(args: argparse.Namespace) -> int:
    try:
        reference = _read(args.reference, "reference")
        images = [(path, _read(path, "image")) for path in args.images]
    except ValueError as e:
        print(f"foxpipe check: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.scene and not 1 <= args.scene <= 20:
        print("foxpipe check: --scene must be 1 to 20", file=sys.stderr)
        return EXIT_USAGE
    settings = load_settings()
    if args.offline or not settings.openai_live:
        from foxpipe.providers.vision_offline import OfflineVision

        checker: VisionCheck = OfflineVision()
    else:
        from foxpipe.providers.vision_openai import OpenAIVision

        checker = OpenAIVision(settings)

    async def run_all() -> int:
        failed = 0
        try:
            for path, data in images:
                verdict = await checker.check(reference, args.reference_text, data, args.scene)
                failed += not verdict.checked
                print(json.dumps(verdict.cli_dict(path)), flush=True)
        finally:
            close = getattr(checker, "aclose", None)
            if close is not None:
                await close()
        return EXIT_CHECK_FAILED if failed else EXIT_OK

    return asyncio.run(run_all())


Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]


def _make_parser(parser: argparse.ArgumentParser) -> None:
    from foxpipe.make import add_make

    add_make(parser)


def _make_run(args: argparse.Namespace) -> int:
    from foxpipe.make import run_make

    return run_make(args)


COMMANDS: dict[str, Command] = {
    "check": (add_check, run_check, "check images against the hero's reference sheet"),
    "make": (_make_parser, _make_run, "make finished Shorts from quiz answers, without a browser"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m foxpipe", description="foxpipe from the command line"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
