"""NCMEC's CyberTipline: the report XML (:mod:`.xml`), validated against NCMEC's published XSD."""
