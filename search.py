"""search.py — entry point of the encrypted speech library (issue 4: library, FAISS index, search).

Until that issue lands this entry point only says so; train.py and the demo are complete.
"""

import sys

if __name__ == "__main__":
    print("search.py: not yet - the encrypted library and its search command arrive with the library/search issue",
          file=sys.stderr)
    sys.exit(2)
