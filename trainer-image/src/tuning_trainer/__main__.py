"""python -m tuning_trainer train --config configs/tiny-llama-lora.yaml"""

import sys

from tuning_trainer.cli import main

sys.exit(main())
