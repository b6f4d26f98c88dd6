"""Fast style transfer: an image transformation network (Johnson et al.) trained once per style,
then one forward pass per photo.

Grouped because its modules serve that one network: ``network`` (the architecture; stylizing
with it), ``train`` (training it against VGG-19 targets), ``params`` and ``recipes`` (the
parameters of both, and the training recipes per device), ``export`` (ONNX and TorchScript
copies) and ``importing`` (networks trained elsewhere, converted to ``network``'s layout).
Fast video (style_engine.video.itn) runs the same network on every frame.

Nothing is re-exported here: callers name the module they need, and importing ``params``
(which style_engine.params does to register the methods) loads only ``network`` and ``recipes``
besides, which it validates against.
"""
