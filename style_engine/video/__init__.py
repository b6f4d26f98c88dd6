"""Video: temporally consistent stylization along the optical flow, frame by frame.

Grouped because every video method shares the same pieces: ``flow`` (optical flow, warping and
Ruder's consistency masks), ``ruder`` (the frame loop, and Ruder et al.'s (2016) video Gatys,
which optimizes each frame from the warped previous output), ``itn`` (fast video: a trained
network per frame, steadied along the flow, in the same frame loop), ``params`` (both methods'
parameters) and ``shots`` (scene cuts, and a clip shared out as segments with their hand-over).

Nothing is re-exported here: callers name the module they need, and importing ``params``
(which style_engine.params does to register the methods) loads only ``flow`` besides.
"""
