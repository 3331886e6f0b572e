"""Make checker/transcription_clip.wav: a short clip of speech for the endpoint checker's transcription check.

Synthesised locally with Debian's espeak-ng (nothing is downloaded): "Kindo verifies this endpoint.", trimmed of
its silences, resampled to 16 kHz (Whisper's rate) and stored as 8-bit mu-law WAV, about 30 KB, small enough to ship
in the checker's ConfigMap. Run it only to change the clip: `apt-get install espeak-ng`, then
`.venv/bin/python scripts/make_transcription_clip.py`. Needs Python <= 3.12 (audioop).
"""

from __future__ import annotations

import audioop  # noqa: deprecated in 3.11, removed in 3.13; this is a one-off tool, the checker only reads the file
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

TEXT = "Kindo verifies this endpoint."
OUT = Path(__file__).resolve().parent.parent / "checker" / "transcription_clip.wav"
RATE = 16000
THRESHOLD = 200  # |sample| above this counts as speech when trimming
MARGIN_SECONDS = 0.05


def synthesise(path: Path) -> tuple[bytes, int]:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(path), TEXT], check=True)
    with wave.open(str(path)) as wav:
        assert wav.getnchannels() == 1 and wav.getsampwidth() == 2
        return wav.readframes(wav.getnframes()), wav.getframerate()


def trimmed(frames: bytes, rate: int) -> bytes:
    samples = [abs(int.from_bytes(frames[i:i + 2], "little", signed=True)) for i in range(0, len(frames), 2)]
    loud = [i for i, s in enumerate(samples) if s > THRESHOLD]
    margin = int(MARGIN_SECONDS * rate)
    start, end = max(0, loud[0] - margin), min(len(samples), loud[-1] + margin)
    return frames[start * 2:end * 2]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        frames, rate = synthesise(Path(tmp) / "speech.wav")
    pcm, _ = audioop.ratecv(trimmed(frames, rate), 2, 1, rate, RATE, None)
    with wave.open(str(OUT), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(RATE)
        wav.setcomptype("NONE", "not compressed")  # header patched below: Python's wave writes PCM only
        wav.writeframes(audioop.lin2ulaw(pcm, 2))
    data = bytearray(OUT.read_bytes())
    data[20:22] = (7).to_bytes(2, "little")  # WAVE_FORMAT_MULAW; 8 bits per sample, as written
    OUT.write_bytes(bytes(data))
    print(f"{OUT}: {len(data):,} bytes, {len(pcm) / 2 / RATE:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
