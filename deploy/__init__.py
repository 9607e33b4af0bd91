"""lbstack's deploy: one module per component (base, secrets, limits, firewall, mariadb, redis,
php_fpm, app, nginx, verification), each with one public ``@deploy`` function, and the entry
files pyinfra runs (``full.py``, ``rolling.py``, ``verify.py``).

Entry files are executed by pyinfra, not imported; the component modules import the library
(``lbstack``) and the facts, never the other way round.
"""
