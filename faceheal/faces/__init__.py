"""Face detection (boxes, scores, five landmarks) and alignment to the model's canonical crop."""
from faceheal.faces.detect import Face, FaceDetector, MtcnnDetector
from faceheal.faces.align import AlignedFace, align_face, paste_back

__all__ = ["Face", "FaceDetector", "MtcnnDetector", "AlignedFace", "align_face", "paste_back"]
