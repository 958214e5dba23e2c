"""tilenorm: training-time LayerNorm. The PyTorch extension is tilenorm.torch."""
import pkgutil

# The compiled tilenorm._C lives in the build tree's tilenorm/ folder, these sources in the
# source tree's: join every tilenorm/ folder on sys.path into this package.
__path__ = pkgutil.extend_path(__path__, __name__)
