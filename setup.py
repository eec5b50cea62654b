"""Build configuration beyond pyproject.toml: the optional C loop of the MIH index.

``optional=True``: where no C compiler is present the build goes on without it, and the index uses
its numpy path (same answers; see src/safeguard/index/_mihkernel.c and docs/performance.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "safeguard.index._mihkernel",
            sources=["src/safeguard/index/_mihkernel.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
