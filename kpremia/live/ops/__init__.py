"""Operations on a live state directory: preflight, resolve, halt causes, gap report."""
