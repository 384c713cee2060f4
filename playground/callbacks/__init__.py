"""The callbacks that belong to no one view: the controller (URL, controls and clicks in, one selection out), the
page-wide viewer and hint, and the guards every view's callbacks start with. Each view's own callbacks sit with its
layout in ``playground/views/``."""
