"""The ``ncodec`` command line. Parses what the user said and calls ``ncodec.video``.

Exit codes: 0 success, 1 failure (bad input, corrupt bitstream, ...), 2 usage error.
Errors are one line on stderr; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time

import ncodec
from ncodec.codec import registry
from ncodec.codec.errors import NcodecError, UsageError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own usage errors: one line, exit 2
        command = " ".join(self.prog.split()[1:2])  # "ncodec encode" -> "encode"; "ncodec" -> ""
        self.exit(EXIT_USAGE, f"ncodec: error: {message} (see {' '.join(['ncodec', command]).strip()} --help)\n")


def _device(name: str) -> str:
    """Resolve --device: auto picks CUDA when present; asking for an absent CUDA is an error."""
    if name == "cpu":
        return "cpu"
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def _runner(args, uses_torch: bool = True):
    """The entered runner that --workers / --ray / --threads ask for, or None."""
    from ncodec.video.parallel import make_runner

    if args.workers is None and args.ray is None:
        if args.threads is not None:
            make_runner(threads=args.threads)  # validates it
            if uses_torch:
                import torch

                torch.set_num_threads(args.threads)
        yield None
        return
    with make_runner(args.workers, args.ray, args.threads, args.device) as runner:
        yield runner


def _codec_options(args) -> dict:
    """The codec options the user gave (generated flags; None where not given)."""
    return {name: getattr(args, name) for name in _option_names() if getattr(args, name) is not None}


def _option_names() -> list[str]:
    return sorted({o.name for name in registry.names() for o in registry.get(name).options})


def add_codec_options(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per codec option, generated from the codecs' declarations
    (codec/options.py); an option several codecs share is one flag whose help names
    them. Values are checked when the codec is known, before any work."""
    users: dict[str, list] = {}
    for name in registry.names():
        for option in registry.get(name).options:
            users.setdefault(option.name, []).append((name, option))
    group = parser.add_argument_group("codec options (each applies to the codecs it names)")
    for key in sorted(set(users) - set(skip)):
        first = users[key][0][1]
        by_help: dict[str, list[str]] = {}
        for codec_name, option in users[key]:
            default = "" if option.default is None or option.type is bool else f"; default {option.default}"
            text = f"{option.help} ({option.describe_range()}{default})"
            by_help.setdefault(text, []).append(codec_name)
        help_text = "; ".join(f"{', '.join(names)}: {text}" for text, names in by_help.items())
        if first.type is bool:
            group.add_argument(
                first.flag,
                action="store_true",
                default=None,
                help="; ".join(f"{', '.join(names)}: {text.split(' (')[0]}" for text, names in by_help.items()),
            )
        else:
            group.add_argument(first.flag, type=first.type, default=None, metavar=key.upper(), help=help_text)


def _cmd_encode(args) -> int:
    from ncodec import video

    options = _codec_options(args)
    codec = args.codec or video.default_codec(args.input)
    uses_torch = registry.get(codec).uses_torch
    with _runner(args, uses_torch) as runner:
        device = runner.device if args.ray else _device(args.device) if uses_torch else "cpu"  # classical: CPU
        result = video.encode_file(
            args.input,
            args.output,
            codec,
            quality=args.quality,
            options=options,
            device=device,
            runner=runner,
            progress=not args.quiet,
        )
    if not args.quiet:
        print(result.summary())
    return EXIT_OK


def _cmd_batch(args) -> int:
    from ncodec.video.batch import BatchSettings, run_batch

    options = _codec_options(args) | ({"scale": args.scale} if args.task == "encode" and args.scale else {})
    settings = BatchSettings(
        task=args.task, codec=args.codec, quality=args.quality, options=options, scale=args.scale, method=args.method
    )
    settings.check()
    with _runner(args) as runner:
        settings.device = runner.device if args.ray else _device(args.device)
        report = run_batch(args.input, args.output, settings, runner, progress=not args.quiet)
    print(report.table())  # the summary is the point of a batch, even with --quiet
    return EXIT_FAILURE if report.failed else EXIT_OK


def _cmd_decode(args) -> int:
    from ncodec import video

    if args.frame is not None:  # one frame to an image file, decoded on its own where the codec allows
        from ncodec.codec.atomic import check_output_path
        from ncodec.video.images import check_image_size, write_image

        check_output_path(args.output, args.input)
        check_image_size(args.output, 1, 1)  # the extension, before any decoding
        start = time.perf_counter()
        rgb = video.decode_frame(args.input, args.frame, max_pixels=int(args.max_pixels))
        write_image(args.output, rgb)
        if not args.quiet:
            print(
                f"{args.output}: frame {args.frame} ({rgb.shape[1]}x{rgb.shape[0]}) in {time.perf_counter() - start:.2f} s"
            )
        return EXIT_OK
    result = video.decode_file(
        args.input,
        args.output,
        video_codec=args.video_codec,
        crf=args.crf,
        preset=args.preset,
        lossless=args.lossless,
        reference=args.reference,
        max_pixels=int(args.max_pixels),
        progress=not args.quiet,
    )
    if not args.quiet:
        print(result.summary())
    return EXIT_OK


def _cmd_info(args) -> int:
    from ncodec import video

    info = video.describe(args.file)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return EXIT_OK


def _cmd_bench(args) -> int:
    from ncodec.video import bench

    report = bench.run(
        args.input,
        args.codecs.split(","),
        points=args.points,
        out_dir=args.out,
        max_frames=args.frames,
        progress=not args.quiet,
    )
    if not args.quiet:
        print(report)
    return EXIT_OK


def _cmd_upscale(args) -> int:
    from ncodec.video.upscale import upscale_file

    result = upscale_file(
        args.input,
        args.output,
        args.scale,
        precision=args.precision,
        device=_device(args.device),
        tile=args.tile,
        video_codec=args.video_codec,
        crf=args.crf,
        preset=args.preset,
        lossless=args.lossless,
        progress=not args.quiet,
    )
    if not args.quiet:
        print(result.summary())
    return EXIT_OK


def _cmd_dereflect(args) -> int:
    from ncodec.video.dereflect import dereflect_file

    result = dereflect_file(
        args.input,
        args.output,
        method=args.method,
        tile=args.tile,
        precision=args.precision,
        max_pixels=args.max_pixels,
        threshold=args.threshold,
        progress=not args.quiet,
    )
    if not args.quiet:
        print(result.summary())
    return EXIT_OK


def _cmd_app(args) -> int:
    try:
        from ncodec.app import web
    except ImportError as e:  # gradio is an optional extra
        raise UsageError(f"the web app needs gradio: pip install 'ncodec[app]' ({e.name} is missing)") from None
    if not 1 <= args.port <= 65535:
        raise UsageError("--port must be in 1..65535")
    if args.max_upload_mb <= 0:
        raise UsageError("--max-upload-mb must be positive")
    print(f"ncodec app on http://{args.host}:{args.port} (Ctrl+C stops it)", flush=True)
    web.serve(args.host, args.port, concurrency=args.concurrency, max_upload=f"{args.max_upload_mb}mb")
    return EXIT_OK


def _factors(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(f) for f in text.split(","))
    except ValueError:
        raise UsageError(f"--downscales takes comma-separated numbers, not {text!r}") from None


def _cmd_train(args) -> int:
    """The drivers report a bad request or data folder as TrainingError; here it becomes
    the one-line error of the command (usage: exit 2, data: exit 1)."""
    import shlex

    from ncodec.codec.atomic import check_output_path
    from ncodec.codec.errors import InputError
    from ncodec.models.train.drivers import TrainingError, TrainingUsageError

    check_output_path(args.out)
    command = shlex.join(["ncodec", *args.argv])  # recorded in the model card, exactly as typed
    try:
        return _train(args, command)
    except TrainingUsageError as e:
        raise UsageError(str(e)) from None
    except TrainingError as e:
        raise InputError(str(e)) from None


def _train(args, command: str) -> int:
    from ncodec.models.train.drivers import train_dereflect, train_espcn, train_mlic

    if args.model == "dereflect":
        card = train_dereflect(
            args.data,
            args.out,
            minutes=args.minutes,
            crop=args.crop or 160,
            batch=args.batch or 8,
            seed=args.seed,
            threads=args.threads,
            checkpoint=args.checkpoint,
            resume=args.resume,
            init=args.init,
            lr=args.lr,
            progress=not args.quiet,
            command=command,
        )
        if not args.quiet:
            val = card["history"][-1]["val_psnr"] if card["history"] else {}
            print(
                f"{args.out}: {card['steps']} steps in {card['wall_seconds'] / 60:.1f} min; validation PSNR "
                f"{val.get('net', float('nan')):.2f} dB (input {val.get('input', float('nan')):.2f} dB)"
            )
        return EXIT_OK
    if args.model == "enhance":
        from ncodec.video.enhance_training import train_enhance

        card = train_enhance(
            args.data,
            args.out,
            base=args.base,
            preset=args.preset,
            minutes=args.minutes,
            steps=args.steps,
            channels=args.channels,
            layers=args.layers,
            quarter=args.quarter,
            scale=args.scale or 1,
            luma=args.luma,
            luma_layers=args.luma_layers,
            frames=args.frames,
            passes=args.passes,
            crop=args.crop or 48,
            batch=args.batch or 16,
            seed=args.seed,
            threads=args.threads,
            checkpoint=args.checkpoint,
            resume=args.resume,
            init=args.init,
            lr=args.lr,
            progress=not args.quiet,
            command=command,
        )
        if not args.quiet:
            v = card["validation"]
            print(
                f"{args.out}: {card['steps']} steps in {card['wall_seconds'] / 60:.1f} min; validation "
                f"{v['val_psnr']:.2f} dB against {v['val_base_psnr']:.2f} dB decoded ({v['val_gain']:+.2f} dB)"
            )
        return EXIT_OK
    if args.model == "mlic":
        card = train_mlic(
            args.data,
            args.out,
            minutes=args.minutes,
            config=args.config,
            crop=args.crop or 128,
            zoom=args.zoom,
            batch=args.batch or 8,
            seed=args.seed,
            threads=args.threads,
            checkpoint=args.checkpoint,
            resume=args.resume,
            init=args.init,
            lr=args.lr,
            progress=not args.quiet,
            command=command,
        )
        if not args.quiet:
            last = card["history"][-1]["val"] if card["history"] else {}
            print(
                f"{args.out}: {card['steps']} steps in {card['wall_seconds'] / 60:.1f} min; validation "
                + ", ".join(f"level {k}: {v['bpp']:.3f} bpp {v['psnr']:.2f} dB" for k, v in last.items())
            )
        return EXIT_OK
    if args.scale is None:
        raise UsageError("train espcn needs --scale 2, 3 or 4")
    card = train_espcn(
        args.data,
        args.out,
        args.scale,
        minutes=args.minutes,
        seed=args.seed,
        threads=args.threads,
        checkpoint=args.checkpoint,
        resume=args.resume,
        init=args.init,
        patch=args.patch,
        batch=args.batch,
        lr=args.lr,
        downscales=_factors(args.downscales),
        progress=not args.quiet,
        command=command,
    )
    if not args.quiet:
        val = card["val_psnr_y"]
        print(
            f"{args.out}: {card['steps']} steps in {card['wall_seconds'] / 60:.1f} min; validation PSNR-Y "
            f"{val['espcn']:.2f} dB (bicubic {val['bicubic']:.2f} dB)"
        )
    return EXIT_OK


def _add_parallel_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--workers", type=int, metavar="N", help=f"{what}run on N local worker processes")
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help=f"{what}run as tasks on the Ray cluster at ADDRESS (auto: the one this environment "
        "names); needs pip install 'ncodec[ray]'",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="T",
        help="torch threads per task (default: the CPUs shared among the workers; 1 per Ray task); "
        "the same T gives the same bytes with or without workers",
    )


def build_parser() -> argparse.ArgumentParser:
    from ncodec.codec.container import DEFAULT_MAX_OUTPUT_PIXELS
    from ncodec.video.dereflect import DEFAULT_MAX_PIXELS

    common = _Parser(add_help=False)
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bars or summaries")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    writes = _Parser(add_help=False)  # the commands that write OUT
    writes.add_argument("--overwrite", "-y", action="store_true", help="replace OUT if it exists")

    p = _Parser(prog="ncodec", description="Neural media codec and video-processing toolkit.", parents=[common])
    p.add_argument("--version", action="version", version=f"ncodec {ncodec.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    codecs = "; ".join(f"{c}: {registry.get(c).description}" for c in registry.names())
    e = sub.add_parser(
        "encode",
        parents=[common, writes],
        help="encode a video or image to an ncodec bitstream",
        description=f"Encode IN (any video or image PyAV reads) into the bitstream OUT. Codecs: {codecs}.",
    )
    e.add_argument("input", metavar="IN")
    e.add_argument("output", metavar="OUT")
    e.add_argument("--codec", "-c", help="codec (default: stdo for videos, mlic for images)")
    e.add_argument("--quality", choices=["low", "medium", "high", "best"], help="quality preset of the codec")
    add_codec_options(e)
    e.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where neural codecs run (classical codecs use the CPU)",
    )
    _add_parallel_options(e, "hnerv/stdo: ")
    e.set_defaults(func=_cmd_encode)

    bt = sub.add_parser(
        "batch",
        parents=[common],
        help="encode, upscale or dereflect every media file of a folder",
        description="Apply --task to every image and video in IN_DIR (not its subfolders), writing "
        "into OUT_DIR: encode -> NAME.bin, upscale and dereflect -> the same name. Files "
        "whose output exists are skipped, so an interrupted batch resumes; a file that "
        "fails is reported and the rest go on. Ends with a summary table; exit 1 if any "
        "file failed.",
    )
    bt.add_argument("input", metavar="IN_DIR")
    bt.add_argument("output", metavar="OUT_DIR")
    bt.add_argument("--task", choices=["encode", "upscale", "dereflect"], default="encode")
    bt.add_argument("--codec", "-c", help="encode: codec (default: stdo for videos, mlic for images)")
    bt.add_argument("--quality", choices=["low", "medium", "high", "best"], help="encode: quality preset")
    bt.add_argument(
        "--scale",
        "-s",
        type=int,
        choices=[1, 2, 3, 4],
        help="upscale: the factor (2, 3 or 4); encode: stdo's downscaling factor (default: chosen per segment)",
    )
    add_codec_options(bt, skip=("scale",))
    bt.add_argument("--method", default="auto", choices=["auto", "net", "classic"], help="dereflect: method")
    bt.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    _add_parallel_options(bt, "files ")
    bt.set_defaults(func=_cmd_batch)

    d = sub.add_parser(
        "decode",
        parents=[common, writes],
        help="decode an ncodec bitstream to a video or image file",
        description="Decode IN to OUT; the output type follows OUT's extension "
        "(.mp4 .mov .mkv .webm .y4m .png). Audio is copied back unchanged.",
    )
    d.add_argument("input", metavar="IN")
    d.add_argument("output", metavar="OUT")
    d.add_argument("--video-codec", choices=["h264", "h265", "av1", "ffv1"], help="codec of the output file")
    g = d.add_mutually_exclusive_group()
    g.add_argument("--crf", type=int, help="quality of the output file's encoder (default 18 for h264)")
    g.add_argument("--lossless", action="store_true", help="write lossless FFV1 (.mkv only)")
    d.add_argument("--preset", help="speed preset of the output file's encoder")
    d.add_argument("--reference", metavar="SRC", help="print PSNR / MS-SSIM of the decoded frames against SRC")
    d.add_argument("--frame", type=int, metavar="N", help="decode only frame N (0-based) into an image file OUT")
    d.add_argument(
        "--max-pixels",
        type=float,
        default=DEFAULT_MAX_OUTPUT_PIXELS,
        metavar="N",
        help=f"refuse bitstreams that declare more decoded pixels, all frames together "
        f"(default {DEFAULT_MAX_OUTPUT_PIXELS:.0e}: a decompression-bomb guard)",
    )
    d.set_defaults(func=_cmd_decode)

    i = sub.add_parser("info", parents=[common], help="describe an ncodec bitstream or a media file")
    i.add_argument("file", metavar="FILE")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    i.set_defaults(func=_cmd_info)

    b = sub.add_parser(
        "bench",
        parents=[common],
        help="rate-distortion benchmark against the classical peers",
        description="Encode a clip (or a folder of images) with each codec at several quality "
        "points; write JSON, a markdown table and an RD plot.",
    )
    b.add_argument("input", metavar="CLIP_OR_FOLDER")
    b.add_argument(
        "--codecs",
        default="x264,x265,av1",
        help="comma-separated codec names; NAME:KEY=VALUE holds an encoder option fixed over the "
        "sweep (e.g. mlic:refine=100)",
    )
    b.add_argument("--points", type=int, default=4, help="quality points per codec (default 4)")
    b.add_argument("--frames", type=int, help="use only the first N frames of a clip")
    b.add_argument("--out", default="bench-out", help="folder for results.json, results.md, rd.png")
    b.set_defaults(func=_cmd_bench)
    u = sub.add_parser(
        "upscale",
        parents=[common, writes],
        help="upscale an image or a video with ESPCN",
        description="Upscale IN by --scale into OUT (image: png/jpg/webp/...; video: .mp4/.mkv/...; audio is copied).",
    )
    u.add_argument("input", metavar="IN")
    u.add_argument("output", metavar="OUT")
    u.add_argument("--scale", "-s", type=int, choices=[2, 3, 4], required=True)
    u.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="network arithmetic; auto: bf16 on CPUs with native bf16 where it costs <= 0.05 dB",
    )
    u.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    u.add_argument("--tile", type=int, default=720, help="tile side in input pixels for large pictures (0: never)")
    u.add_argument("--video-codec", choices=["h264", "h265", "av1", "ffv1"], help="codec of a video output")
    ug = u.add_mutually_exclusive_group()
    ug.add_argument("--crf", type=int, help="quality of the video output's encoder")
    ug.add_argument("--lossless", action="store_true", help="lossless FFV1 video (.mkv)")
    u.add_argument("--preset", help="speed preset of the video output's encoder")
    u.set_defaults(func=_cmd_upscale)

    d = sub.add_parser(
        "dereflect",
        parents=[common, writes],
        help="remove reflections from a photo taken through glass",
        description="Restore the scene behind the glass in the photo IN (up to 8K and beyond, "
        "in tiles) and write OUT (png, jpg, webp, ...).",
    )
    d.add_argument("input", metavar="IN")
    d.add_argument("output", metavar="OUT")
    d.add_argument(
        "--method",
        default="auto",
        choices=["auto", "net", "classic"],
        help="net: the trained network; classic: fast DCT-domain method (Yang et al. 2019); "
        "auto: net when its weights are installed",
    )
    d.add_argument("--tile", type=int, default=None, help="net: tile side in pixels (default 576)")
    d.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16"],
        help="net: arithmetic; auto: bf16 where the CPU computes it natively (its cost: docs/BENCHMARKS.md)",
    )
    d.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger pictures (default {DEFAULT_MAX_PIXELS:,})",
    )
    d.add_argument("--threshold", type=float, default=0.05, help="classic: gradient threshold (default 0.05)")
    d.set_defaults(func=_cmd_dereflect)

    w = sub.add_parser(
        "app",
        parents=[common],
        help="serve the browser app (Gradio)",
        description="Serve the upscale / restore / compress / video-codec web app.",
    )
    w.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    w.add_argument("--port", type=int, default=7860)
    w.add_argument("--concurrency", type=int, default=1, help="jobs run at once; the rest wait in the queue")
    w.add_argument("--max-upload-mb", type=int, default=300, help="largest upload accepted (default 300 MB)")
    w.set_defaults(func=_cmd_app)

    t = sub.add_parser(
        "train",
        parents=[common],
        help="train a model with the project's recipe",
        description="Train MODEL on a folder of photos and write safetensors weights (fp16; MLIC's "
        "large tensors int8) plus a JSON model card (OUT with .json).",
    )
    t.add_argument("model", choices=["espcn", "mlic", "dereflect", "enhance"])
    t.add_argument(
        "--base", default="av1", choices=["av1", "x265", "x264"], help="enhance: the base codec (default av1)"
    )
    t.add_argument("--preset", help="enhance: the base encoder's preset (default: its own)")
    t.add_argument("--channels", type=int, default=24, help="enhance: network width (default 24)")
    t.add_argument("--layers", type=int, default=6, help="enhance: convolutions (default 6)")
    t.add_argument(
        "--quarter",
        type=int,
        default=0,
        help="enhance: convolutions of a U-Net body at quarter resolution, its down and up ones included "
        "(default 0: a plain stack)",
    )
    t.add_argument(
        "--luma",
        type=int,
        default=0,
        help="enhance: channels of a full-resolution luma branch (default 0: none); with --init of weights "
        "without one, the branch is added to them",
    )
    t.add_argument("--luma-layers", type=int, default=5, help="enhance: the luma branch's convolutions (default 5)")
    t.add_argument("--frames", type=int, default=10, help="enhance: frames per coded pan (default 10)")
    t.add_argument("--passes", type=int, default=2, help="enhance: pans per training photo (default 2)")
    t.add_argument("--steps", type=int, help="stop after this many steps (default: the time budget)")
    t.add_argument(
        "--scale",
        type=int,
        help="espcn: upscaling factor, 2, 3 or 4; enhance: 2, 3 or 4 restores and upscales a base layer coded at "
        "1/scale size",
    )
    t.add_argument(
        "--config",
        default="small",
        choices=["small", "wide", "wider", "paper"],
        help="mlic: model size (default small; wide, wider: wider latents, --init with the "
        "weights of a narrower one grows them)",
    )
    t.add_argument("--crop", type=int, help="mlic/dereflect/enhance: training crop side (default 128/160/48)")
    t.add_argument(
        "--zoom",
        type=float,
        default=1.0,
        help="mlic: half the crops shrunk from regions up to 1/ZOOM larger, for denser detail (default 1: off)",
    )
    t.add_argument("--data", required=True, help="folder of training photos (searched recursively)")
    t.add_argument("--out", required=True, help="weights file to write (.safetensors)")
    t.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget (default 20)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, help="torch CPU threads (default: all)")
    t.add_argument("--checkpoint", help="checkpoint file (default: OUT.ckpt)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    t.add_argument("--patch", type=int, help="LR training patch side (default 32)")
    t.add_argument("--batch", type=int, help="patches per step (espcn default 32, mlic 8)")
    t.add_argument("--lr", type=float, help="peak learning rate (default espcn 3e-4, mlic 1e-4)")
    t.add_argument(
        "--downscales",
        metavar="F,F,...",
        help="espcn: also train on every photo shrunk by these factors (e.g. 1,0.75,0.5)",
    )
    t.add_argument("--init", metavar="WEIGHTS", help="start from these weights (e.g. the shipped ones), new schedule")
    t.set_defaults(func=_cmd_train)
    return p


def _refuse_overwrite(args) -> None:
    """An existing OUT is replaced only when the user said so (--overwrite / -y)."""
    if getattr(args, "overwrite", None) is not None:  # the commands that write one OUT file
        from ncodec.codec.atomic import check_output_path

        check_output_path(args.output, args.input, overwrite=args.overwrite)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that every cleanup (partial outputs,
    temporary folders) runs exactly as for Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


_exit_signal: list[int] = []  # the signal the process is to end by, set by run()


def _end_by_signal() -> None:
    if _exit_signal:
        sys.stderr.flush()
        signal.signal(_exit_signal[0], signal.SIG_DFL)
        os.kill(os.getpid(), _exit_signal[0])


def run() -> None:
    """The ``ncodec`` command: :func:`main`, and after an interrupt (outputs already
    removed, message printed) the process ends by that signal rather than with status
    130/143: a shell running a loop of commands stops it on Ctrl-C only when the child
    died by SIGINT (a child that exits 130 is taken to have handled the interrupt).
    The signal is raised at exit after the libraries' exit handlers (worker pools), which
    they register later, while main() runs, and atexit runs in reverse order."""
    atexit.register(_end_by_signal)
    code = main()
    if code - 128 in (signal.SIGINT, signal.SIGTERM):
        _exit_signal.append(code - 128)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    log = logging.getLogger("ncodec")  # only our own messages; libraries keep their defaults
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("ncodec: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    try:
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(argv)
        _refuse_overwrite(args)
        return args.func(args)
    except UsageError as e:
        if debug:
            raise
        print(f"ncodec: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except NcodecError as e:
        if debug:
            raise
        print(f"ncodec: error: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: the partial output is already gone
        print("ncodec: interrupted; no output was written", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(e, Terminated) else signal.SIGINT)
    except Exception as e:  # a bug or an unforeseen environment problem: still one line
        if debug:
            raise
        print(f"ncodec: internal error: {type(e).__name__}: {e} (run with --debug for details)", file=sys.stderr)
        return EXIT_FAILURE
