"""Installs ``modalc-modal.pth`` at the top of site-packages (see agent_runtime/sdk/finder.py)."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "modalc-modal.pth"


class BuildWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), PTH),
                       os.path.join(self.build_lib, PTH), preserve_mode=0)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


setup(cmdclass={"build_py": BuildWithPth})
