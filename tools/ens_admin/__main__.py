import sys

from ens_admin.cli import main

sys.exit(main())
