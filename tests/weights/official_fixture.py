"""The official-format NAFNet fixture (tools/make_nafnet_fixture.py) that several test files load.

A width-4, four-level NAFNet with random weights; the deepest encoder level and the last decoder
level hold two blocks each, so that on CPU jdeblur's trainer runs them as a ``lax.scan`` over their
stacked parameters while ``kernels='xla'`` unrolls them: the imported weights are checked in both layouts.
"""
import pathlib

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures" / "nafnet"
OFFICIAL = FIXTURES / "official.pth"
BLOCKS = dict(width=4, enc_blk_nums=(1, 1, 1, 2), middle_blk_num=1, dec_blk_nums=(1, 1, 1, 2))
TENSORS = 214  # in the official state dict: 18 per block, 4 for intro and ending, 2 per down, 1 per up
