"""Skin-optics model of the virtual camera: skin colour and pulsatile colour change per skin type.

The camera sees light reflected by skin as the sum of two parts (the dichromatic reflection
model used to derive CHROM and POS: de Haan & Jeanne 2013, IEEE TBME 60(10), eq. 1-4; Wang,
den Brinker, Stuijk & de Haan 2017, IEEE TBME 64(7), eq. 1-7)::

    C_c(t) = I(t) * ( D_c * (1 - a_c * p(t))  +  S * (1 + k_s * m(t)) )          c = R, G, B

- **diffuse** ``D_c``: light that entered the skin, crossed the melanin-bearing epidermis
  twice and was scattered back by the dermis. Blood volume ``p(t)`` (the PPG pulse, 0 at the
  foot, about 1 at the systolic peak) absorbs part of it: the relative pulsatile amplitude
  ``a_c`` follows the normalised blood-volume-pulse signature ``Pbv = [0.33, 0.77, 0.53]``
  (de Haan & van Leest 2014, Physiol. Meas. 35(9), for a standard RGB camera under white
  light): strongest in green, weakest in red (Verkruysse, Svaasand & Nelson 2008);
- **specular** ``S``: light reflected at the skin surface (about 4-5 % of the incident light for
  the refractive index of the stratum corneum, ~1.55; Anderson & Parrish 1981): white (the colour
  of the source), without pulse, modulated by motion ``m(t)`` (the angle between light, skin and
  camera changes when the head moves);
- ``I(t)``: the illumination intensity (drift and steps).

**Skin tone.** The epidermis holds melanin; its absorption coefficient is
``mu_a,mel(lambda) = 6.6e11 * lambda_nm^-3.33`` 1/cm (Jacques 1998, "Skin optics", Oregon
Medical Laser Center News; Jacques 2013, Phys. Med. Biol. 58:R37), and the volume fraction of
melanosomes in the epidermis is 1.3-6.3 % in light, 11-16 % in moderately pigmented and 18-43 %
in darkly pigmented skin (same source). Fitzpatrick types I-VI are given the fractions in
:data:`FITZPATRICK_MELANIN` (inside those ranges). Light crosses a 60 um epidermis twice, so the
diffuse part of channel ``c`` is scaled by ``T_c^2 = exp(-2 f_mel mu_a,mel(lambda_c) d)`` at the
channel's centre wavelength (:data:`CHANNEL_WAVELENGTH_NM`). The dermal colour is anchored so that
type III skin has the chromaticity of de Haan & Jeanne's standardised skin-tone vector
``[0.7682, 0.5121, 0.3841]`` (normalised RGB of skin under white light). Darker skin therefore
has a darker, redder diffuse part; the pulsatile change (a fraction of the diffuse part) shrinks
in absolute terms, and, beside the unchanged specular part, also relative to the pixel value:
a lower pulse amplitude and SNR for the same sensor, as measured for darker skin by Fallow,
Tarumi & Tanaka 2013 (Anesth. Analg. 117(2)) and Dasari et al. 2021 (npj Digit. Med. 4:91).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CHANNEL_WAVELENGTH_NM",
    "EPIDERMIS_THICKNESS_CM",
    "FITZPATRICK_MELANIN",
    "PBV_SIGNATURE",
    "SKIN_TONE_REFERENCE",
    "SPECULAR_SHARE",
    "SkinOptics",
    "melanin_absorption_per_cm",
    "skin_optics",
]

#: epidermal melanosome volume fraction per Fitzpatrick type (inside Jacques' 1998 ranges:
#: light 1.3-6.3 %, moderately pigmented 11-16 %, darkly pigmented 18-43 %)
FITZPATRICK_MELANIN: dict[int, float] = {1: 0.02, 2: 0.05, 3: 0.10, 4: 0.15, 5: 0.25, 6: 0.38}
#: centre wavelengths of the R, G, B channels of a typical Bayer camera, nm
CHANNEL_WAVELENGTH_NM: tuple[float, float, float] = (610.0, 540.0, 465.0)
#: epidermis thickness, cm (60 um; Jacques 1998)
EPIDERMIS_THICKNESS_CM = 0.006
#: normalised blood-volume-pulse signature R, G, B (de Haan & van Leest 2014)
PBV_SIGNATURE: tuple[float, float, float] = (0.33, 0.77, 0.53)
#: standardised skin-tone vector R, G, B under white light (de Haan & Jeanne 2013), taken as type III
SKIN_TONE_REFERENCE: tuple[float, float, float] = (0.7682, 0.5121, 0.3841)
#: specular (surface) reflection as a share of the incident light (Fresnel, n ~ 1.55)
SPECULAR_SHARE = 0.045
_REFERENCE_TYPE = 3


def melanin_absorption_per_cm(wavelength_nm: np.ndarray | float) -> np.ndarray:
    """Absorption coefficient of a melanosome, 1/cm: ``6.6e11 * lambda^-3.33`` (Jacques 1998)."""
    return 6.6e11 * np.asarray(wavelength_nm, dtype=np.float64) ** -3.33


def _epidermal_transmittance2(melanin_fraction: float) -> np.ndarray:
    """Two-way transmittance of the epidermis per channel, ``exp(-2 f mu_a,mel d)``."""
    mu = melanin_absorption_per_cm(np.asarray(CHANNEL_WAVELENGTH_NM))
    return np.exp(-2.0 * melanin_fraction * mu * EPIDERMIS_THICKNESS_CM)


@dataclass(frozen=True)
class SkinOptics:
    """Reflectance of one skin type as the camera sees it (fractions of the incident light).

    Attributes:
        skin_type: Fitzpatrick type 1-6.
        melanin_fraction: epidermal melanosome volume fraction.
        diffuse_rgb: diffuse reflectance ``D_c`` per channel (at the pulse foot).
        pulse_rgb: relative pulsatile amplitude ``a_c`` of the diffuse part per channel.
        specular: specular reflectance ``S`` (white, the same in every channel).
    """

    skin_type: int
    melanin_fraction: float
    diffuse_rgb: np.ndarray
    pulse_rgb: np.ndarray
    specular: float

    def mean_rgb(self) -> np.ndarray:
        """Reflectance per channel at the pulse foot, without motion: ``D_c + S``."""
        return self.diffuse_rgb + self.specular

    def relative_pulse_rgb(self) -> np.ndarray:
        """Pulsatile change relative to the whole pixel value, ``a_c D_c / (D_c + S)`` per channel."""
        return self.pulse_rgb * self.diffuse_rgb / self.mean_rgb()


def skin_optics(skin_type: int, pulse_green: float = 0.006, brightness: float = 0.75) -> SkinOptics:
    """The :class:`SkinOptics` of Fitzpatrick type ``skin_type``.

    Args:
        skin_type: Fitzpatrick type, 1 (lightest) to 6 (darkest).
        pulse_green: relative pulsatile amplitude of the diffuse green reflectance, from foot to
            systolic peak (red and blue scale with :data:`PBV_SIGNATURE`). Remote PPG amplitudes
            are a fraction of a percent to ~1 % of the pixel value (Verkruysse et al. 2008).
        brightness: diffuse reflectance of the red channel of type III skin (sets the scale).

    Returns:
        the skin's diffuse and specular reflectance and its pulsatile amplitudes.

    Raises:
        ValueError: unknown skin type or a non-positive amplitude/brightness.
    """
    if skin_type not in FITZPATRICK_MELANIN:
        raise ValueError(f"skin_type must be a Fitzpatrick type 1-6, got {skin_type!r}")
    if not pulse_green > 0 or not brightness > 0:
        raise ValueError(f"pulse_green and brightness must be > 0, got {pulse_green!r}, {brightness!r}")
    f_mel = FITZPATRICK_MELANIN[skin_type]
    ref = np.asarray(SKIN_TONE_REFERENCE) / SKIN_TONE_REFERENCE[0] * brightness
    dermis = ref / _epidermal_transmittance2(FITZPATRICK_MELANIN[_REFERENCE_TYPE])
    diffuse = dermis * _epidermal_transmittance2(f_mel)
    pbv = np.asarray(PBV_SIGNATURE)
    return SkinOptics(
        skin_type=int(skin_type),
        melanin_fraction=f_mel,
        diffuse_rgb=diffuse,
        pulse_rgb=pulse_green * pbv / pbv[1],
        specular=SPECULAR_SHARE,
    )
